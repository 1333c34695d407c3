//! The audit chain as a transaction extends it: each record sealed to the
//! previous one (`cairn_store::chain`), the signed head kept in `meta`.

use cairn_store::{chain, AuditKey, AuditRecord, StoreResult};

use super::{AuditFacts, Tx};
use crate::dialect::Dialect;
use crate::query::{query, query_as};
use crate::rows::{micros, to_json_text};

pub(super) struct Chain {
    seq: i64,
    mac: String,
    seal: Option<AuditKey>,
    /// The records this transaction appended, for the audit sink.
    pub(super) written: Vec<AuditRecord>,
}

impl Chain {
    /// Read the chain's end (inside the transaction that holds the write lock).
    pub(super) async fn read<D: Dialect>(
        tx: &mut Tx<'_, D>,
        seal: Option<AuditKey>,
    ) -> StoreResult<Chain> {
        let last: Option<(i64, String)> =
            query_as::<D, _>("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(tx.conn)
                .await
                .map_err(D::err("read audit chain"))?;
        let (seq, mac) = last.unwrap_or((0, String::new()));
        Ok(Chain {
            seq,
            mac,
            seal,
            written: Vec::new(),
        })
    }

    /// Append one record, sealed to the previous one.
    pub(super) async fn append<D: Dialect>(
        &mut self,
        tx: &mut Tx<'_, D>,
        action: &str,
        f: AuditFacts,
    ) -> StoreResult<()> {
        let c = tx.context;
        let mut record = AuditRecord {
            seq: self.seq + 1,
            revision: tx.revision,
            at: tx.at,
            actor: c.actor.clone(),
            action: action.to_owned(),
            app: f.app,
            env: f.env,
            key: f.key,
            from_version: f.from_version,
            to_version: f.to_version,
            message: c.message.clone(),
            client_ip: c.client_ip.clone(),
            user_agent: c.user_agent.clone(),
            replica: c.replica.clone(),
            detail: f.detail,
            mac: String::new(),
        };
        if let Some(key) = &self.seal {
            record.mac = chain::record_mac(key, &self.mac, &record);
        }
        query::<D>(
            "INSERT INTO audit (seq, revision, at, actor, action, app, env, key, from_version, \
             to_version, message, client_ip, user_agent, replica, detail, mac) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(record.seq)
        .bind(record.revision)
        .bind(micros(&record.at))
        .bind(&record.actor)
        .bind(&record.action)
        .bind(&record.app)
        .bind(&record.env)
        .bind(&record.key)
        .bind(record.from_version)
        .bind(record.to_version)
        .bind(&record.message)
        .bind(&record.client_ip)
        .bind(&record.user_agent)
        .bind(&record.replica)
        .bind(to_json_text(&record.detail)?)
        .bind(&record.mac)
        .execute(tx.conn)
        .await
        .map_err(D::err("insert audit record"))?;
        self.seq = record.seq;
        self.mac.clone_from(&record.mac);
        self.written.push(record);
        Ok(())
    }

    /// Record the signed head of the chain.
    pub(super) async fn write_head<D: Dialect>(&self, tx: &mut Tx<'_, D>) -> StoreResult<()> {
        let sig = self
            .seal
            .as_ref()
            .map(|k| chain::head_signature(k, self.seq, &self.mac))
            .unwrap_or_default();
        query::<D>("UPDATE meta SET audit_seq = $1, audit_mac = $2, audit_sig = $3 WHERE id = 1")
            .bind(self.seq)
            .bind(&self.mac)
            .bind(sig)
            .execute(tx.conn)
            .await
            .map_err(D::err("write audit head"))?;
        Ok(())
    }
}
