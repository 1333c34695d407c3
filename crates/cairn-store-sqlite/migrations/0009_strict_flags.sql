-- Environment policy: flag-lint warnings refuse the write (DESIGN.md §4).
ALTER TABLE environments ADD COLUMN strict_flags INTEGER NOT NULL DEFAULT 0;
