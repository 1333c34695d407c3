-- Environment policy: flag-lint warnings refuse the write (DESIGN.md §4).
ALTER TABLE environments ADD COLUMN strict_flags BOOLEAN NOT NULL DEFAULT FALSE;
