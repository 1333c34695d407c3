//! Secrets: envelope-encrypted values with versions, rotation with a grace
//! period, references from configuration, and master-key rekeying.
//!
//! Key hierarchy: master key (outside the database) → HKDF → KEK (wraps each
//! version's random data key) and the audit HMAC key (keyed hashes of values
//! in audit records). See [`crate::crypto::envelope`] for the cipher.
//!
//! Plaintext only ever lives in [`Plaintext`] (its `Debug` is redacted) and
//! in the response of an allowed read; it is never stored, logged, cached or
//! put into an audit record.

pub mod rotation;

use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_model::{validate_key, Scope};
use cairn_store::{
    AuditEvent, Mutation, Role, SealedSecret, SecretPolicy, SecretRecord, SecretVersion,
};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::crypto::envelope::{self, Kek, Sealed, SecretId};
use crate::crypto::keys::{Keyring, MasterKey, Purpose};
use crate::identity::access::{check_resolve, check_write, require_admin};
use crate::identity::auth::{Origin, Principal};
use crate::identity::policy::{self, Action};
use crate::kernel::commit::message_or;
use crate::kernel::state::ResolvedView;
use crate::kernel::Kernel;
use crate::outbound::Outbound;
use crate::webhooks::Webhooks;
use crate::{Error, Result};
use cairn_store::AuditAction;
use cairn_store::{DeleteSecret, PutSecret, RewrapSecret};
use cairn_store::{Guard, Read};

/// The longest rotation interval and grace period: ten years.
pub const MAX_DAYS: i32 = 3650;

/// The key of a reference object in configuration: `{"$secret": "db/password"}`.
pub const REFERENCE_KEY: &str = "$secret";

/// A resolved view and its values with secrets substituted
/// ([`Secrets::resolve_with_secrets`]): `values` are those of `view`, so they
/// belong to `view.revision`. `Debug` never shows the values (they may hold
/// plaintext).
#[derive(Clone)]
pub struct WithSecrets {
    pub view: Arc<ResolvedView>,
    pub values: Value,
}

impl std::fmt::Debug for WithSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithSecrets")
            .field("app", &self.view.app)
            .field("env", &self.view.env)
            .field("revision", &self.view.revision)
            .field("values", &"<redacted>")
            .finish()
    }
}

/// A secret value in memory. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Plaintext(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as text (secrets are UTF-8 text in this slice).
    pub fn as_str(&self) -> Result<&str> {
        std::str::from_utf8(&self.0)
            .map_err(|_| Error::Internal("a secret value is not UTF-8 text".into()))
    }
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plaintext(<redacted>)")
    }
}

/// Where a version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// The version readers get.
    Current,
    /// Superseded, still readable until `grace_until`.
    PreviousInGrace,
    /// Superseded and past its grace period: no longer readable.
    Retired,
}

/// Metadata of one version (no key material, no ciphertext).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecretVersionInfo {
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub actor: String,
    pub state: VersionState,
    /// For a superseded version: when its grace period ends (ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<DateTime<Utc>>,
    /// The key-encryption key its data key is wrapped under.
    pub kek_id: String,
}

/// Metadata of one secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecretInfo {
    pub name: String,
    /// `None`: every app.
    pub app: Option<String>,
    /// `None`: every environment.
    pub env: Option<String>,
    pub current_version: i64,
    pub policy: SecretPolicy,
    pub created_at: DateTime<Utc>,
    /// When the current version was written (the last rotation).
    pub rotated_at: DateTime<Utc>,
    /// When the scheduler should rotate it next (with a rotation period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<DateTime<Utc>>,
    // This text is the field's description in docs/openapi.json, which this
    // change leaves as it is: it still names the façade method, now
    // `Secrets::secret_info`; fix the words when the document is regenerated.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// Oldest first; only from [`Service::secret_info`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<SecretVersionInfo>,
}

impl SecretInfo {
    /// What `who` may see of `r`: a hook's full URL only for admins at its
    /// scope, its origin for everyone else.
    fn for_principal(r: &SecretRecord, who: &Principal) -> Self {
        let mut info = SecretInfo::from_record(r);
        if !who.can(
            Action::Admin,
            r.scope.app.as_deref(),
            r.scope.env.as_deref(),
        ) {
            info.policy.generator = r.policy.generator_redacted();
        }
        info
    }

    fn from_record(r: &SecretRecord) -> Self {
        SecretInfo {
            name: r.name.clone(),
            app: r.scope.app.clone(),
            env: r.scope.env.clone(),
            current_version: r.current_version,
            policy: r.policy.clone(),
            created_at: r.created_at,
            rotated_at: r.updated_at,
            next_rotation: crate::secrets::rotation::next_rotation(r),
            versions: Vec::new(),
        }
    }
}

/// The version about to be written, and who writes it (what a generator
/// or a rotation hook needs to know).
pub(crate) struct NextVersion<'a> {
    pub who: &'a Principal,
    pub policy: &'a SecretPolicy,
    pub scope: &'a Scope,
    pub name: &'a str,
    pub current_version: i64,
    pub new_version: i64,
}

/// What a new secret or a rotation gets as its value.
#[derive(Debug, Clone)]
pub enum NewValue {
    /// Supplied by the caller.
    Given(Plaintext),
    /// Made by the secret's generator.
    Generate,
}

/// The outcome of creating or rotating a secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecretWritten {
    pub name: String,
    pub version: i64,
    pub revision: i64,
}

/// The outcome of a rekey.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rekeyed {
    /// The KEK every data key is now wrapped under.
    pub kek_id: String,
    /// Versions re-wrapped.
    pub rewrapped: usize,
    /// Versions already under the current KEK.
    pub unchanged: usize,
    /// Retired versions under a key that is no longer loaded (left as they are).
    pub skipped: usize,
}

/// Check a generator: `random:LEN:CHARSET` (`alnum`, `alpha`, `numeric`,
/// `hex`, `base64url`; LEN 8..=4096), or `hook:URL` (an `http`/`https` URL).
pub fn validate_generator(spec: &str) -> Result<()> {
    if let Some(url) = hook_url(spec) {
        return Outbound::parse_url(url)
            .map(|_| ())
            .map_err(|e| Error::invalid("generator", format!("hook: {e}")));
    }
    charset_and_len(spec).map(|_| ())
}

/// The URL of a `hook:URL` generator.
pub fn hook_url(spec: &str) -> Option<&str> {
    spec.strip_prefix("hook:")
}

fn charset_and_len(spec: &str) -> Result<(&'static [u8], usize)> {
    let bad = |m: &str| {
        Error::invalid(
            "generator",
            format!("{m} (use random:LEN:CHARSET or hook:URL)"),
        )
    };
    let mut parts = spec.split(':');
    let (Some("random"), Some(len), Some(charset), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("unknown generator"));
    };
    let len: usize = len.parse().map_err(|_| bad("LEN is not a number"))?;
    if !(8..=4096).contains(&len) {
        return Err(bad("LEN must be 8 to 4096"));
    }
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let set: &'static [u8] = match charset {
        "alnum" => ALNUM,
        "alpha" => ALPHA,
        "numeric" => b"0123456789",
        "hex" => b"0123456789abcdef",
        "base64url" => B64URL,
        _ => {
            return Err(bad(
                "CHARSET must be alnum, alpha, numeric, hex or base64url",
            ))
        }
    };
    Ok((set, len))
}

fn generate(spec: &str) -> Result<Plaintext> {
    let (set, len) = charset_and_len(spec)?;
    let mut rng = rand::rngs::OsRng;
    let bytes = (0..len)
        .map(|_| set[rng.gen_range(0..set.len())])
        .collect::<Vec<u8>>();
    Ok(Plaintext(bytes))
}

/// Every secret name referenced anywhere in `value`.
pub fn references(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_refs(value, &mut out);
    out
}

fn reference_name(value: &Value) -> Option<&str> {
    match value {
        Value::Object(m) if m.len() == 1 => m.get(REFERENCE_KEY)?.as_str(),
        _ => None,
    }
}

fn collect_refs(value: &Value, out: &mut BTreeSet<String>) {
    if let Some(name) = reference_name(value) {
        out.insert(name.to_owned());
        return;
    }
    match value {
        Value::Object(m) => m.values().for_each(|v| collect_refs(v, out)),
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn to_sealed(s: &SealedSecret) -> Sealed {
    Sealed {
        kek_id: s.kek_id.clone(),
        wrapped_key: s.wrapped_key.clone(),
        ciphertext: s.ciphertext.clone(),
    }
}

fn to_stored(s: Sealed) -> SealedSecret {
    SealedSecret {
        kek_id: s.kek_id,
        wrapped_key: s.wrapped_key,
        ciphertext: s.ciphertext,
    }
}

/// The state of `versions[i]` of `record`. Versions from before a delete
/// (older than the re-created secret) are retired.
fn state_of(
    versions: &[SecretVersion],
    i: usize,
    record: &SecretRecord,
    now: DateTime<Utc>,
) -> (VersionState, Option<DateTime<Utc>>) {
    let grace_days = record.policy.grace_days;
    if versions[i].created_at < record.created_at {
        return (VersionState::Retired, None);
    }
    match versions.get(i + 1) {
        None => (VersionState::Current, None),
        Some(next) => {
            let until = Duration::try_days(i64::from(grace_days))
                .and_then(|g| next.created_at.checked_add_signed(g))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            if now < until {
                (VersionState::PreviousInGrace, Some(until))
            } else {
                (VersionState::Retired, Some(until))
            }
        }
    }
}

/// The secrets feature ([`crate::Service::secrets`]): secrets, their
/// versions and rotation, resolving with secrets substituted, rekeying.
/// Holds the kernel, the keyring (seals and opens values), this process's
/// rotation scheduler and the outbound HTTP guard (rotation hooks).
#[derive(Clone, Copy)]
pub struct Secrets<'a> {
    kernel: &'a Kernel,
    keys: &'a Keyring,
    scheduler: &'a rotation::Scheduler,
    outbound: &'a Outbound,
}

impl<'a> Secrets<'a> {
    pub(crate) fn new(
        kernel: &'a Kernel,
        keys: &'a Keyring,
        scheduler: &'a rotation::Scheduler,
        outbound: &'a Outbound,
    ) -> Self {
        Secrets {
            kernel,
            keys,
            scheduler,
            outbound,
        }
    }
}

impl Secrets<'_> {
    fn kek(&self) -> Kek {
        self.keys.kek()
    }

    /// The KEK with this id: the current master key's or a previous one's.
    fn kek_by_id(&self, id: &str) -> Result<Kek> {
        self.keys.kek_by_id(id).ok_or_else(|| {
            Error::Unavailable(format!(
                "the key-encryption key {id} is not loaded (configure the previous master key)"
            ))
        })
    }

    /// `hmac-sha256:<hex>` of a value, keyed by a key derived from the master
    /// key: lets an auditor tell whether two reads saw the same value without
    /// revealing it.
    pub fn secret_value_hash(&self, value: &Plaintext) -> String {
        let key = self.keys.current().derive(Purpose::SecretsAudit);
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&key) {
            Ok(m) => m,
            // HMAC takes keys of any length: cannot happen.
            Err(_) => return String::new(),
        };
        mac.update(value.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    async fn secret_record(&self, scope: &Scope, name: &str) -> Result<SecretRecord> {
        match self.kernel.store().secret(scope, name).await? {
            Some((r, false)) => Ok(r),
            _ => Err(Error::not_found(format!("secret {name} at {scope}"))),
        }
    }

    /// Create a secret (operator or admin at its scope).
    #[allow(clippy::too_many_arguments)] // who, where from, what, policy, why
    pub async fn create_secret(
        &self,
        who: &Principal,
        origin: &Origin,
        scope: &Scope,
        name: &str,
        value: NewValue,
        policy: SecretPolicy,
        message: &str,
    ) -> Result<SecretWritten> {
        let message = &message_or(message, "create secret");
        validate_key(name).map_err(|e| rename(e.into(), "name"))?;
        check_write(who, scope)?;
        self.kernel.read().check_scope(scope)?;
        // Taken before the signing secret is read: a change to it committed
        // after this refuses the write (409) rather than leave the hook
        // signed with a deleted secret.
        let mut guard = Guard::new(self.kernel.revision());
        let hooked = policy.generator.as_deref().and_then(hook_url).is_some();
        match (&policy.hook_secret, hooked) {
            (None, true) => {
                return Err(Error::invalid(
                    "hook_secret",
                    "a hook generator needs hook_secret: the name of a secret whose value signs the hook's requests",
                ))
            }
            (Some(_), false) => {
                return Err(Error::invalid(
                    "hook_secret",
                    "only a hook:URL generator takes a hook_secret",
                ))
            }
            (Some(signer), true) => {
                validate_key(signer).map_err(|e| rename(e.into(), "hook_secret"))?;
                guard.read(Read::Secret {
                    name: signer.clone(),
                    from: scope.clone(),
                });
                let Some(signer_scope) = self
                    .signing_secret(scope, signer)
                    .await?
                    .filter(|_| signer != name)
                else {
                    return Err(Error::invalid(
                        "hook_secret",
                        format!("{signer} is not another secret visible from {scope}"),
                    ));
                };
                // Whoever picks the URL and the key receives an HMAC under
                // that key: only someone who may read the key may do so.
                if !who.can(
                    Action::ReadSecret,
                    signer_scope.app.as_deref(),
                    signer_scope.env.as_deref(),
                ) {
                    return Err(Error::Forbidden(format!(
                        "a hook signed with {signer} needs the right to read {signer} (admin)"
                    )));
                }
            }
            (None, false) => {}
        }
        let mut policy = policy;
        if let Some(g) = policy.generator.clone() {
            validate_generator(&g)?;
            if let Some(url) = hook_url(&g) {
                // Refuse a loopback/private target now rather than at the first rotation.
                self.outbound
                    .check(url)
                    .await
                    .map_err(|e| Error::invalid("generator", format!("hook: {e}")))?;
                // Stored in its normal form (what redaction expects).
                let parsed = Outbound::parse_url(url)
                    .map_err(|e| Error::invalid("generator", format!("hook: {e}")))?;
                policy.generator = Some(format!("hook:{}", parsed.as_str()));
            }
        }
        if policy
            .rotation_days
            .is_some_and(|d| !(1..=MAX_DAYS).contains(&d))
        {
            return Err(Error::invalid(
                "rotation_days",
                format!("must be 1 to {MAX_DAYS}"),
            ));
        }
        if policy
            .rotation_seconds
            .is_some_and(|s| !(1..=i64::from(MAX_DAYS) * 86_400).contains(&s))
        {
            return Err(Error::invalid(
                "rotation_seconds",
                format!("must be 1 to {} (ten years)", i64::from(MAX_DAYS) * 86_400),
            ));
        }
        if policy.grace_days > MAX_DAYS {
            return Err(Error::invalid(
                "grace_days",
                format!("must be at most {MAX_DAYS}"),
            ));
        }
        if policy.rotation_days.is_some() && policy.rotation_seconds.is_some() {
            return Err(Error::invalid(
                "rotation_seconds",
                "give rotation_days or rotation_seconds, not both",
            ));
        }
        if policy.grace_days < 0 {
            return Err(Error::invalid("grace_days", "must be 0 or more"));
        }
        let latest = match self.kernel.store().secret(scope, name).await? {
            Some((_, false)) => {
                return Err(Error::Conflict {
                    message: format!("secret {name} at {scope} already exists"),
                    current_version: None,
                })
            }
            _ => self
                .kernel
                .store()
                .secret_versions(scope, name)
                .await?
                .last()
                .map_or(0, |v| v.version),
        };
        let next = NextVersion {
            who,
            policy: &policy,
            scope,
            name,
            current_version: 0,
            new_version: latest + 1,
        };
        let value = self.value_for(value, &next).await?;
        self.write_version(
            who,
            origin,
            scope,
            name,
            latest + 1,
            &value,
            Some(policy),
            Some(0),
            message,
            Some(guard),
        )
        .await
    }

    /// Rotate: write a new version from the generator (or the given value).
    /// The previous version stays readable for the grace period.
    pub async fn rotate_secret(
        &self,
        who: &Principal,
        origin: &Origin,
        scope: &Scope,
        name: &str,
        value: NewValue,
        message: &str,
    ) -> Result<SecretWritten> {
        let message = &message_or(message, "rotate secret");
        validate_key(name).map_err(|e| rename(e.into(), "name"))?;
        check_write(who, scope)?;
        let record = self.secret_record(scope, name).await?;
        self.rotate_record(who, origin, &record, value, message)
            .await
    }

    /// Rotate `record` as it was read: compare-and-set against its current
    /// version, so a rotation that raced another one writes nothing (409).
    pub(crate) async fn rotate_record(
        &self,
        who: &Principal,
        origin: &Origin,
        record: &SecretRecord,
        value: NewValue,
        message: &str,
    ) -> Result<SecretWritten> {
        let (scope, name) = (&record.scope, record.name.as_str());
        let latest = self
            .kernel
            .store()
            .secret_versions(scope, name)
            .await?
            .last()
            .map_or(0, |v| v.version);
        let next = NextVersion {
            who,
            policy: &record.policy,
            scope,
            name,
            current_version: record.current_version,
            new_version: latest + 1,
        };
        let value = self.value_for(value, &next).await?;
        self.write_version(
            who,
            origin,
            scope,
            name,
            latest + 1,
            &value,
            None,
            Some(record.current_version),
            message,
            None,
        )
        .await
    }

    /// The value of a new version: the given one, or one from the generator
    /// (`random:…` here, `hook:URL` from the hook).
    async fn value_for(&self, value: NewValue, next: &NextVersion<'_>) -> Result<Plaintext> {
        let generator = next.policy.generator.as_deref();
        let value = match (value, generator.and_then(hook_url)) {
            (NewValue::Generate, Some(url)) => {
                NewValue::Given(self.call_rotation_hook(url, next).await?)
            }
            (value, _) => value,
        };
        match (value, generator) {
            (NewValue::Given(v), _) => {
                if v.as_bytes().is_empty() {
                    return Err(Error::invalid("value", "must not be empty"));
                }
                if v.as_bytes().len() > 64 * 1024 {
                    return Err(Error::TooLarge {
                        field: "value".into(),
                        message: "at most 65536 bytes".into(),
                    });
                }
                v.as_str()
                    .map_err(|_| Error::invalid("value", "must be UTF-8 text"))?;
                Ok(v)
            }
            (NewValue::Generate, Some(g)) => generate(g),
            (NewValue::Generate, None) => Err(Error::invalid(
                "value",
                "give a value, or a generator to make one",
            )),
        }
    }

    #[allow(clippy::too_many_arguments)] // the one place a version is sealed
    async fn write_version(
        &self,
        who: &Principal,
        origin: &Origin,
        scope: &Scope,
        name: &str,
        version: i64,
        value: &Plaintext,
        policy: Option<SecretPolicy>,
        expected_version: Option<i64>,
        message: &str,
        guard: Option<Guard>,
    ) -> Result<SecretWritten> {
        let id = SecretId {
            name,
            app: scope.app_str(),
            env: scope.env_str(),
            version,
        };
        let sealed = envelope::seal(&self.kek(), &id, value.as_bytes());
        let m = Mutation::PutSecret(PutSecret {
            scope: scope.clone(),
            name: name.to_owned(),
            version,
            sealed: to_stored(sealed),
            policy,
            value_hash: self.secret_value_hash(value),
            expected_version,
        });
        // Not planned again on a stale guard: the value may come from a hook.
        let committed = self
            .kernel
            .commit_guarded(who, origin, message, vec![(None, m)], guard)
            .await??;
        Ok(SecretWritten {
            name: name.to_owned(),
            version,
            revision: committed.revision,
        })
    }

    /// Delete a secret. Refused (409) while configuration references it,
    /// unless `force`.
    pub async fn delete_secret(
        &self,
        who: &Principal,
        origin: &Origin,
        scope: &Scope,
        name: &str,
        force: bool,
        message: &str,
    ) -> Result<i64> {
        if message.trim().is_empty() {
            return Err(Error::invalid(
                "message",
                "deleting a secret needs a message saying why",
            ));
        }
        validate_key(name).map_err(|e| rename(e.into(), "name"))?;
        check_write(who, scope)?;
        self.kernel
            .retrying(move || async move {
                // The guard covers what the checks below read: entries that can
                // reference the secret, and every secret's rotation hook.
                let mut guard = Guard::new(self.kernel.revision());
                self.secret_record(scope, name).await?;
                if !force {
                    guard.read(Read::Seeing {
                        kind: None,
                        layer: scope.clone(),
                    });
                    guard.read(Read::Secrets);
                    self.refuse_if_referenced(scope, name).await?;
                }
                let m = Mutation::DeleteSecret(DeleteSecret {
                    scope: scope.clone(),
                    name: name.to_owned(),
                });
                let committed = self
                    .kernel
                    .commit_guarded(who, origin, message, vec![(None, m)], Some(guard))
                    .await?;
                Ok(committed.map(|c| c.revision))
            })
            .await
    }

    /// Refuse (409) to delete a secret that configuration or a rotation hook uses.
    async fn refuse_if_referenced(&self, scope: &Scope, name: &str) -> Result<()> {
        let mut users = self.referencing_entries(scope, name);
        // Secrets whose rotation hook it signs.
        users.extend(
            self.kernel
                .store()
                .secrets()
                .await?
                .into_iter()
                .filter(|s| {
                    s.policy.hook_secret.as_deref() == Some(name) && scope.is_visible_from(&s.scope)
                })
                .map(|s| format!("the rotation hook of secret {} at {}", s.name, s.scope)),
        );
        if !users.is_empty() {
            return Err(Error::Conflict {
                message: format!(
                    "secret {name} is referenced by {}; delete with force to delete anyway",
                    users.join(", ")
                ),
                current_version: None,
            });
        }
        Ok(())
    }

    /// Live entries (as `key at scope`) that can see the secret at `scope` and reference `name`.
    fn referencing_entries(&self, scope: &Scope, name: &str) -> Vec<String> {
        let st = self.kernel.read();
        let mut out = Vec::new();
        for (entry_scope, entries) in &st.scopes {
            if !scope.is_visible_from(entry_scope) {
                continue;
            }
            for (key, v) in &entries.entries {
                if v.value
                    .as_ref()
                    .is_some_and(|val| references(val).contains(name))
                {
                    out.push(format!("{key} at {entry_scope}"));
                }
            }
        }
        out.sort();
        out
    }

    /// Metadata of every secret the caller can see (no values).
    pub async fn secrets(&self, who: &Principal) -> Result<Vec<SecretInfo>> {
        Ok(self
            .kernel
            .store()
            .secrets()
            .await?
            .iter()
            .filter(|r| who.can(Action::Read, r.scope.app.as_deref(), r.scope.env.as_deref()))
            .map(|r| SecretInfo::for_principal(r, who))
            .collect())
    }

    /// Metadata of one secret and its versions (no values).
    pub async fn secret_info(
        &self,
        who: &Principal,
        scope: &Scope,
        name: &str,
    ) -> Result<SecretInfo> {
        validate_key(name).map_err(|e| rename(e.into(), "name"))?;
        check_read(who, scope)?;
        let record = self.secret_record(scope, name).await?;
        let versions = self.kernel.store().secret_versions(scope, name).await?;
        let mut info = SecretInfo::for_principal(&record, who);
        info.versions = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let (state, grace_until) = state_of(&versions, i, &record, self.kernel.now());
                SecretVersionInfo {
                    version: v.version,
                    created_at: v.created_at,
                    actor: v.actor.clone(),
                    state,
                    grace_until,
                    kek_id: v.sealed.kek_id.clone(),
                }
            })
            .collect();
        Ok(info)
    }

    /// The plaintext of a secret (admins only): the current version, or a
    /// given one that is current or still in its grace period. Audited as
    /// `secret.read` with the keyed hash of the value.
    pub async fn get_secret(
        &self,
        who: &Principal,
        origin: &Origin,
        scope: &Scope,
        name: &str,
        version: Option<i64>,
    ) -> Result<(i64, Plaintext)> {
        validate_key(name).map_err(|e| rename(e.into(), "name"))?;
        check_read(who, scope)?;
        if !who.can(
            Action::ReadSecret,
            scope.app.as_deref(),
            scope.env.as_deref(),
        ) {
            return Err(Error::Forbidden(
                "reading a secret's value needs the admin role".into(),
            ));
        }
        let (version, value) = self.open_version(scope, name, version).await?;
        self.record_read(who, origin, scope, name, version, &value, "read")
            .await?;
        Ok((version, value))
    }

    /// The most specific secret named `name` that configuration at `scope`
    /// can see (the key that signs a rotation hook's requests).
    pub(crate) async fn signing_secret(&self, scope: &Scope, name: &str) -> Result<Option<Scope>> {
        Ok(self
            .kernel
            .store()
            .secrets()
            .await?
            .into_iter()
            .filter(|s| s.name == name && s.scope.is_visible_from(scope))
            .map(|s| s.scope)
            .max_by_key(|s| (s.app.is_some(), s.env.is_some())))
    }

    /// Decrypt one readable version (current or previous-in-grace).
    pub(crate) async fn open_version(
        &self,
        scope: &Scope,
        name: &str,
        version: Option<i64>,
    ) -> Result<(i64, Plaintext)> {
        let record = self.secret_record(scope, name).await?;
        let versions = self.kernel.store().secret_versions(scope, name).await?;
        let want = version.unwrap_or(record.current_version);
        let Some(i) = versions.iter().position(|v| v.version == want) else {
            return Err(Error::not_found(format!(
                "version {want} of secret {name} at {scope}"
            )));
        };
        if state_of(&versions, i, &record, self.kernel.now()).0 == VersionState::Retired {
            return Err(Error::Gone(format!(
                "version {want} of secret {name} is retired (its grace period ended)"
            )));
        }
        let v = &versions[i];
        let id = SecretId {
            name,
            app: scope.app_str(),
            env: scope.env_str(),
            version: v.version,
        };
        let kek = self.kek_by_id(&v.sealed.kek_id)?;
        let bytes = envelope::open(&kek, &id, &to_sealed(&v.sealed)).map_err(|e| {
            Error::Internal(format!(
                "secret {name} version {want} does not decrypt: {e}"
            ))
        })?;
        Ok((v.version, Plaintext(bytes)))
    }

    #[allow(clippy::too_many_arguments)] // one audit record, all of it needed
    pub(crate) async fn record_read(
        &self,
        who: &Principal,
        origin: &Origin,
        scope: &Scope,
        name: &str,
        version: i64,
        value: &Plaintext,
        how: &str,
    ) -> Result<()> {
        let event = AuditEvent {
            action: AuditAction::SecretRead,
            app: Some(scope.app_str().to_owned()),
            env: Some(scope.env_str().to_owned()),
            key: Some(name.to_owned()),
            detail: json!({
                "version": version,
                "via": how,
                "value_hmac": self.secret_value_hash(value),
            }),
        };
        // Fail closed: a read that cannot be audited is not served.
        self.kernel
            .append_event(who.actor(), origin, format!("secret {how}"), event)
            .await
    }

    /// The resolved values of (app, env) with secret references replaced by
    /// plaintext, just in time, for a principal that may read them: admins
    /// (at the secret's scope) and SDK tokens bound to this view. Every
    /// other reference stays as it is. Each substitution is audited.
    ///
    /// The values come from the returned view, read once: they are the
    /// values of its revision however the view changes meanwhile.
    pub async fn resolve_with_secrets(
        &self,
        who: &Principal,
        origin: &Origin,
        app: &str,
        env: &str,
    ) -> Result<WithSecrets> {
        check_resolve(who, app, env)?;
        let view = self.kernel.read().view(app, env)?;
        let mut values = Value::Object(view.values.clone().into_iter().collect());
        let names = references(&values);
        if names.is_empty() {
            return Ok(WithSecrets { view, values });
        }
        let sdk: Vec<_> = who
            .bindings
            .iter()
            .filter(|b| b.role == Role::Sdk)
            .cloned()
            .collect();
        let sdk_here = policy::allowed(&sdk, Action::Resolve, Some(app), Some(env));
        let layers = Scope::layers(app, env);
        let secrets = self.kernel.store().secrets().await?;
        let mut plain = std::collections::BTreeMap::new();
        for name in names {
            // The most specific secret of that name among the view's layers.
            let Some(scope) = layers
                .iter()
                .rev()
                .find(|l| secrets.iter().any(|s| s.name == name && s.scope == **l))
            else {
                continue;
            };
            let may = sdk_here
                || who.can(
                    Action::ReadSecret,
                    scope.app.as_deref(),
                    scope.env.as_deref(),
                );
            if !may {
                continue;
            }
            let (version, value) = self.open_version(scope, &name, None).await?;
            self.record_read(who, origin, scope, &name, version, &value, "resolve")
                .await?;
            plain.insert(name, value);
        }
        substitute(&mut values, &plain)?;
        Ok(WithSecrets { view, values })
    }

    /// Re-wrap every data key under the current master key's KEK (admin).
    /// `old` is the master key being retired (versions wrapped under a key in
    /// `Options::previous_master_keys` are re-wrapped too). Online: each
    /// version is re-wrapped in place, reads work throughout.
    pub async fn rekey(
        &self,
        who: &Principal,
        origin: &Origin,
        old: Option<&MasterKey>,
        message: &str,
    ) -> Result<Rekeyed> {
        let message = &message_or(message, "rekey");
        require_admin(who, None)?;
        let new = self.kek();
        let mut rewrapped = 0;
        let mut unchanged = 0;
        let mut skipped = 0;
        let mut all = self.kernel.store().secrets().await?;
        // Deleted secrets keep their versions; they are not listed, so they
        // keep their old wrapping (they can no longer be read).
        all.sort_by(|a, b| (&a.scope, &a.name).cmp(&(&b.scope, &b.name)));
        for record in all {
            let versions = self
                .kernel
                .store()
                .secret_versions(&record.scope, &record.name)
                .await?;
            for (i, v) in versions.iter().enumerate() {
                if v.sealed.kek_id == new.id() {
                    unchanged += 1;
                    continue;
                }
                let old_kek = match old.map(Kek::from_master) {
                    Some(k) if k.id() == v.sealed.kek_id => k,
                    _ => match self.kek_by_id(&v.sealed.kek_id) {
                        Ok(k) => k,
                        // A retired version can never be read again: it
                        // need not keep a retired master key around.
                        Err(_)
                            if state_of(&versions, i, &record, self.kernel.now()).0
                                == VersionState::Retired =>
                        {
                            skipped += 1;
                            continue;
                        }
                        Err(e) => return Err(e),
                    },
                };
                let id = SecretId {
                    name: &record.name,
                    app: record.scope.app_str(),
                    env: record.scope.env_str(),
                    version: v.version,
                };
                let sealed =
                    envelope::rewrap(&old_kek, &new, &id, &to_sealed(&v.sealed)).map_err(|e| {
                        Error::Internal(format!(
                            "re-wrapping secret {} version {}: {e}",
                            record.name, v.version
                        ))
                    })?;
                let m = Mutation::RewrapSecret(RewrapSecret {
                    scope: record.scope.clone(),
                    name: record.name.clone(),
                    version: v.version,
                    kek_id: sealed.kek_id,
                    wrapped_key: sealed.wrapped_key,
                });
                self.kernel
                    .commit(who, origin, message, vec![(None, m)])
                    .await?;
                rewrapped += 1;
            }
        }
        // Webhook signing secrets are sealed the same way.
        let (hooks_rewrapped, hooks_unchanged) =
            Webhooks::new(self.kernel, self.keys, self.outbound)
                .rekey_webhooks(who, origin, old, message)
                .await?;
        Ok(Rekeyed {
            kek_id: new.id().to_owned(),
            rewrapped: rewrapped + hooks_rewrapped,
            unchanged: unchanged + hooks_unchanged,
            skipped,
        })
    }
}

/// Check at write time (the configuration write path) that every secret `value` references exists at a
/// scope visible from `scope` (422 otherwise).
pub(crate) async fn check_references(kernel: &Kernel, scope: &Scope, value: &Value) -> Result<()> {
    let refs = references(value);
    if refs.is_empty() {
        return Ok(());
    }
    let secrets = kernel.store().secrets().await?;
    for name in refs {
        validate_key(&name).map_err(|e| rename(e.into(), "value"))?;
        if !secrets
            .iter()
            .any(|s| s.name == name && s.scope.is_visible_from(scope))
        {
            return Err(Error::UnknownReference {
                field: "value".into(),
                message: format!(
                    "references secret {name}, which does not exist at a scope visible from {scope}"
                ),
            });
        }
    }
    Ok(())
}

fn substitute(
    value: &mut Value,
    plain: &std::collections::BTreeMap<String, Plaintext>,
) -> Result<()> {
    if let Some(name) = reference_name(value) {
        if let Some(p) = plain.get(name) {
            *value = Value::String(p.as_str()?.to_owned());
        }
        return Ok(());
    }
    match value {
        Value::Object(m) => m.values_mut().try_for_each(|v| substitute(v, plain)),
        Value::Array(a) => a.iter_mut().try_for_each(|v| substitute(v, plain)),
        _ => Ok(()),
    }
}

fn check_read(who: &Principal, scope: &Scope) -> Result<()> {
    if who.can(Action::Read, scope.app.as_deref(), scope.env.as_deref()) {
        Ok(())
    } else {
        Err(Error::Hidden {
            what: format!("scope {scope}"),
        })
    }
}

fn rename(e: Error, field: &str) -> Error {
    match e {
        Error::Invalid { message, .. } => Error::Invalid {
            field: field.to_owned(),
            message,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_anywhere() {
        let v = json!({"db": {"password": {"$secret": "db/password"}}, "list": [{"$secret": "a"}], "not": {"$secret": "x", "other": 1}});
        let r: Vec<_> = references(&v).into_iter().collect();
        assert_eq!(r, vec!["a".to_owned(), "db/password".to_owned()]);
    }

    #[test]
    fn generators() {
        let p = generate("random:32:alnum").unwrap();
        assert_eq!(p.as_bytes().len(), 32);
        assert!(p.as_bytes().iter().all(u8::is_ascii_alphanumeric));
        assert_ne!(p, generate("random:32:alnum").unwrap());
        assert!(generate("random:8:hex")
            .unwrap()
            .as_str()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_hexdigit()));
        for bad in [
            "random:4:alnum",
            "random:x:alnum",
            "random:32:emoji",
            "hook:32:alnum",
            "random:32",
        ] {
            assert!(validate_generator(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plaintext_debug_is_redacted() {
        let p = Plaintext::new("canary-value");
        assert!(!format!("{p:?}").contains("canary"));
    }

    #[test]
    fn visibility() {
        let g = Scope::global();
        let shop = Scope::new(Some("shop"), None);
        let shop_prod = Scope::new(Some("shop"), Some("prod"));
        assert!(g.is_visible_from(&shop_prod));
        assert!(shop.is_visible_from(&shop_prod));
        assert!(!shop_prod.is_visible_from(&shop));
        assert!(!Scope::new(Some("other"), None).is_visible_from(&shop_prod));
    }
}
