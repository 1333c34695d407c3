//! A commit's [`Guard`]: what its plan was validated against, checked under
//! the lock that allocates the revision.

use cairn_model::{EntryKind, Scope};
use cairn_store::{Changes, Guard, StoreError, StoreResult};

use crate::dialect::{Conn, Dialect};
use crate::query::{query_as, query_scalar};

/// Refuse the commit (`StoreError::Stale`) if a change committed after the
/// guard's basis touches what its plan read. Called under the lock that
/// allocates the revision, so every earlier commit is visible and no later
/// one can slip in before this one. `revision` is the one just allocated:
/// when it follows the basis, nothing was committed in between (revisions are
/// gapless and allocated under this lock) and nothing needs reading.
pub(super) async fn check<D: Dialect>(
    conn: &mut Conn<D>,
    guard: &Guard,
    revision: i64,
) -> StoreResult<()> {
    if revision == guard.basis + 1 {
        return Ok(());
    }
    let needs = guard.needs();
    let mut changes = Changes::default();
    if needs.entries {
        let rows: Vec<(String, String, String, String)> =
            query_as::<D, _>("SELECT app, env, key, kind FROM entry_versions WHERE revision > $1")
                .bind(guard.basis)
                .fetch_all(conn)
                .await
                .map_err(D::err("read changes since the basis"))?;
        changes.entries = rows
            .into_iter()
            .filter_map(|(app, env, key, kind)| {
                Some((
                    Scope::from_stored(&app, &env),
                    key,
                    EntryKind::parse(&kind)?,
                ))
            })
            .collect();
    }
    if needs.schemas {
        let rows: Vec<(String, String)> =
            query_as::<D, _>("SELECT app, pattern FROM schemas WHERE revision > $1")
                .bind(guard.basis)
                .fetch_all(conn)
                .await
                .map_err(D::err("read schema changes since the basis"))?;
        changes.schemas = rows
            .into_iter()
            .map(|(app, pattern)| ((!app.is_empty()).then_some(app), pattern))
            .collect();
    }
    if needs.secrets {
        let rows: Vec<(String, String, String)> =
            query_as::<D, _>("SELECT app, env, name FROM secrets WHERE revision > $1")
                .bind(guard.basis)
                .fetch_all(conn)
                .await
                .map_err(D::err("read secret changes since the basis"))?;
        changes.secrets = rows
            .into_iter()
            .map(|(app, env, name)| (Scope::from_stored(&app, &env), name))
            .collect();
    }
    if needs.environments {
        changes.environments =
            query_scalar::<D, String>("SELECT name FROM environments WHERE revision > $1")
                .bind(guard.basis)
                .fetch_all(conn)
                .await
                .map_err(D::err("read environment changes since the basis"))?;
    }
    match guard.conflict(&changes) {
        None => Ok(()),
        Some(what) => Err(StoreError::Stale { what }),
    }
}
