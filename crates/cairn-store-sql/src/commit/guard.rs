//! A commit's [`Guard`]: what its plan was validated against, checked under
//! the lock that allocates the revision.

use cairn_model::{EntryKind, Scope};
use cairn_store::{Changes, Guard, StoreError, StoreResult};

use crate::dialect::{Begun, Conn, Dialect};
use crate::query::query_as;

/// Refuse the commit (`StoreError::Stale`) if a change committed after the
/// guard's basis touches what its plan read. Called under the lock that
/// allocates the revision, so every earlier commit is visible and no later
/// one can slip in before this one. When the allocated revision follows the
/// basis, nothing was committed in between (revisions are gapless and
/// allocated under this lock) and nothing needs reading; nor do the catalog
/// tables (schemas, environments) when the catalog revision the lock saw is
/// not past the basis.
pub(super) async fn check<D: Dialect>(
    conn: &mut Conn<D>,
    guard: &Guard,
    begun: &Begun,
) -> StoreResult<()> {
    let revision = begun.revision;
    if revision == guard.basis + 1 {
        return Ok(());
    }
    let catalog_moved = begun.catalog_revision > guard.basis;
    // One round trip inside the lock: every list the reads need, tagged.
    // Both bounds, so that the planner picks the revision index even for a
    // table it has no statistics of yet (`revision > $1` alone is estimated
    // as a third of the table and scanned whole, under the lock).
    let needs = guard.needs();
    let mut parts = Vec::new();
    if needs.entries {
        parts.push(
            "SELECT 'e', app, env, key, kind FROM entry_versions \
             WHERE revision > $1 AND revision < $2",
        );
    }
    if needs.schemas && catalog_moved {
        parts.push(
            "SELECT 's', app, '', pattern, '' FROM schemas WHERE revision > $1 AND revision < $2",
        );
    }
    if needs.secrets {
        parts.push(
            "SELECT 'x', app, env, name, '' FROM secrets WHERE revision > $1 AND revision < $2",
        );
    }
    if needs.environments && catalog_moved {
        parts.push(
            "SELECT 'v', '', '', name, '' FROM environments WHERE revision > $1 AND revision < $2",
        );
    }
    let mut changes = Changes::default();
    if parts.is_empty() {
        return Ok(());
    }
    let rows: Vec<(String, String, String, String, String)> =
        query_as::<D, _>(parts.join(" UNION ALL "))
            .bind(guard.basis)
            .bind(revision)
            .fetch_all(conn)
            .await
            .map_err(D::err("read changes since the basis"))?;
    for (tag, app, env, name, kind) in rows {
        match tag.as_str() {
            "e" => {
                if let Some(kind) = EntryKind::parse(&kind) {
                    changes
                        .entries
                        .push((Scope::from_stored(&app, &env), name, kind));
                }
            }
            "s" => changes
                .schemas
                .push(((!app.is_empty()).then_some(app), name)),
            "x" => changes.secrets.push((Scope::from_stored(&app, &env), name)),
            _ => changes.environments.push(name),
        }
    }
    match guard.conflict(&changes) {
        None => Ok(()),
        Some(what) => Err(StoreError::Stale { what }),
    }
}
