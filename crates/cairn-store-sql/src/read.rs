//! Reads of the versioned state: head, catalog, entries and their history.

use cairn_model::{Revision, Scope};
use cairn_store::{Catalog, EntryVersion, Head, StoreError, StoreResult};

use crate::dialect::{Conn, Dialect};
use crate::query::{query, query_as};
use crate::rows::{self, ENTRY_COLS, SCHEMA_COLS};

/// The head and the oldest retained revision.
pub(crate) async fn head<D: Dialect>(conn: &mut Conn<D>) -> StoreResult<(Head, Revision)> {
    let (revision, catalog_revision, compacted): (i64, i64, i64) = query_as::<D, _>(
        "SELECT head, catalog_revision, compacted_revision FROM meta WHERE id = 1",
    )
    .fetch_one(conn)
    .await
    .map_err(D::err("read head"))?;
    Ok((
        Head {
            revision,
            catalog_revision,
        },
        compacted,
    ))
}

pub(crate) async fn catalog<D: Dialect>(conn: &mut Conn<D>) -> StoreResult<Catalog> {
    let apps = query::<D>("SELECT name, description, created_at, revision FROM apps ORDER BY name")
        .fetch_all(conn)
        .await
        .map_err(D::err("read apps"))?;
    let envs = query::<D>(
        "SELECT name, description, protected, required_approvals, auto_approve, strict_flags, \
         approvers, created_at, revision FROM environments ORDER BY name",
    )
    .fetch_all(conn)
    .await
    .map_err(D::err("read environments"))?;
    let schemas = query::<D>(format!(
        "SELECT {SCHEMA_COLS} FROM schemas s WHERE s.version = \
         (SELECT MAX(s2.version) FROM schemas s2 WHERE s2.app = s.app AND s2.pattern = s.pattern) \
         ORDER BY s.app, s.pattern"
    ))
    .fetch_all(conn)
    .await
    .map_err(D::err("read schemas"))?;
    Ok(Catalog {
        apps: rows::all(&apps, rows::app)?,
        envs: rows::all(&envs, rows::environment)?,
        schemas: rows::all(&schemas, rows::schema)?,
    })
}

pub(crate) async fn schema_history<D: Dialect>(
    conn: &mut Conn<D>,
) -> StoreResult<Vec<cairn_store::SchemaRecord>> {
    let found = query::<D>(format!(
        "SELECT {SCHEMA_COLS} FROM schemas s ORDER BY s.revision, s.app, s.pattern, s.version"
    ))
    .fetch_all(conn)
    .await
    .map_err(D::err("read schema history"))?;
    rows::all(&found, rows::schema)
}

/// Every live (non-deleted) entry at its current version.
pub(crate) async fn live_entries<D: Dialect>(conn: &mut Conn<D>) -> StoreResult<Vec<EntryVersion>> {
    let found = query::<D>(format!(
        "SELECT {ENTRY_COLS} FROM entries e JOIN entry_versions ev \
         ON ev.app = e.app AND ev.env = e.env AND ev.key = e.key AND ev.version = e.version \
         WHERE NOT e.deleted ORDER BY ev.app, ev.env, ev.key"
    ))
    .fetch_all(conn)
    .await
    .map_err(D::err("read entries"))?;
    rows::all(&found, rows::entry)
}

/// Entry versions with `after < revision <= upto`, in commit order.
pub(crate) async fn entry_changes<D: Dialect>(
    conn: &mut Conn<D>,
    after: Revision,
    upto: Revision,
) -> StoreResult<Vec<EntryVersion>> {
    let found = query::<D>(format!(
        "SELECT {ENTRY_COLS} FROM entry_versions ev \
         WHERE ev.revision > $1 AND ev.revision <= $2 ORDER BY ev.revision, ev.position"
    ))
    .bind(after)
    .bind(upto)
    .fetch_all(conn)
    .await
    .map_err(D::err("read entry changes"))?;
    rows::all(&found, rows::entry)
}

pub(crate) async fn scope_revisions<D: Dialect>(
    conn: &mut Conn<D>,
) -> StoreResult<Vec<(Scope, Revision)>> {
    let found: Vec<(String, String, i64)> = query_as::<D, _>(
        "SELECT app, env, MAX(revision) FROM entry_versions GROUP BY app, env ORDER BY app, env",
    )
    .fetch_all(conn)
    .await
    .map_err(D::err("read scope revisions"))?;
    Ok(found
        .into_iter()
        .map(|(app, env, revision)| (Scope::from_stored(&app, &env), revision))
        .collect())
}

pub(crate) async fn entry_history<D: Dialect>(
    conn: &mut Conn<D>,
    scope: &Scope,
    key: &str,
) -> StoreResult<Vec<EntryVersion>> {
    let found = query::<D>(format!(
        "SELECT {ENTRY_COLS} FROM entry_versions ev \
         WHERE ev.app = $1 AND ev.env = $2 AND ev.key = $3 ORDER BY ev.version"
    ))
    .bind(scope.app_str())
    .bind(scope.env_str())
    .bind(key)
    .fetch_all(conn)
    .await
    .map_err(D::err("read entry history"))?;
    rows::all(&found, rows::entry)
}

pub(crate) async fn entry_version<D: Dialect>(
    conn: &mut Conn<D>,
    scope: &Scope,
    key: &str,
    version: i64,
) -> StoreResult<Option<EntryVersion>> {
    let found = query::<D>(format!(
        "SELECT {ENTRY_COLS} FROM entry_versions ev \
         WHERE ev.app = $1 AND ev.env = $2 AND ev.key = $3 AND ev.version = $4"
    ))
    .bind(scope.app_str())
    .bind(scope.env_str())
    .bind(key)
    .bind(version)
    .fetch_optional(conn)
    .await
    .map_err(D::err("read entry version"))?;
    found.as_ref().map(rows::entry).transpose()
}

/// The latest version (tombstones included) of every entry in `scopes` as of
/// revision `at`, read in one snapshot.
pub(crate) async fn entries_at<D: Dialect>(
    conn: &mut Conn<D>,
    scopes: &[Scope],
    at: Revision,
) -> StoreResult<Vec<EntryVersion>> {
    let (head, compacted) = head::<D>(conn).await?;
    if at > head.revision || at < 0 {
        return Err(StoreError::NotFound {
            what: format!("revision {at}"),
        });
    }
    if at < compacted {
        return Err(StoreError::Compacted {
            requested: at,
            oldest: compacted,
        });
    }
    let mut out = Vec::new();
    for scope in scopes {
        let found = query::<D>(format!(
            "SELECT {ENTRY_COLS} FROM entry_versions ev \
             WHERE ev.app = $1 AND ev.env = $2 AND ev.revision <= $3 AND ev.version = \
             (SELECT MAX(v.version) FROM entry_versions v \
              WHERE v.app = ev.app AND v.env = ev.env AND v.key = ev.key AND v.revision <= $3) \
             ORDER BY ev.key"
        ))
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(at)
        .fetch_all(conn)
        .await
        .map_err(D::err("read entries at revision"))?;
        out.extend(rows::all(&found, rows::entry)?);
    }
    Ok(out)
}
