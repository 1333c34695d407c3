//! Change requests: the reads (one, or a list by state, newest first). The
//! write is `commit/changes.rs`, inside `Store::commit`.

use cairn_store::{ChangeFilter, ChangeRecord, StoreError, StoreResult};

use crate::dialect::{Conn, Dialect};
use crate::query::{query, query_as};
use crate::rows;

/// A stored record, checked against the row it came from.
pub(crate) fn parse(id: &str, version: i64, text: &str) -> StoreResult<ChangeRecord> {
    let record: ChangeRecord = serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("change {id}: bad record: {e}")))?;
    if record.id != id || record.version != version {
        return Err(StoreError::Backend(format!(
            "change {id}: record says {} version {}, row says version {version}",
            record.id, record.version
        )));
    }
    Ok(record)
}

pub(crate) async fn one<D: Dialect>(
    conn: &mut Conn<D>,
    id: &str,
) -> StoreResult<Option<ChangeRecord>> {
    let row: Option<(String, i64, String)> =
        query_as::<D, _>("SELECT id, version, record FROM changes WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(D::err("read change"))?;
    row.map(|(id, version, text)| parse(&id, version, &text))
        .transpose()
}

pub(crate) async fn list<D: Dialect>(
    conn: &mut Conn<D>,
    filter: &ChangeFilter,
) -> StoreResult<Vec<ChangeRecord>> {
    let mut q = query::<D>("SELECT id, version, record FROM changes WHERE 1 = 1");
    if !filter.states.is_empty() {
        q.push(" AND state IN (");
        for (i, s) in filter.states.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push_bind(s.as_str());
        }
        q.push(")");
    }
    q.push(" ORDER BY created_at DESC, id DESC");
    if let Some(limit) = filter.limit {
        q.push(" LIMIT ").push_bind(limit.max(0));
    }
    let found = q.fetch_all(conn).await.map_err(D::err("read changes"))?;
    rows::all(&found, |row| {
        let id: String = rows::col(row, "id")?;
        let version: i64 = rows::col(row, "version")?;
        let text: String = rows::col(row, "record")?;
        parse(&id, version, &text)
    })
}
