//! `nitro-signer policy`: the production KMS key policy, written from the measurements that
//! `nitro-cli build-enclave` printed for an enclave image (EIF).
//!
//! The policy has, in this order:
//! - `KeyAdministration`: the administrator (`--admin-arn`, required: a dedicated principal, or
//!   the account's root when given explicitly) may describe and manage the key, including
//!   `kms:PutKeyPolicy` (KMS refuses a policy that would lock its creator out), but has no
//!   cryptographic action at all: no `Decrypt`, `GenerateDataKey*`, `ReEncrypt*`, `Encrypt` or
//!   `CreateGrant` (a grant could hand out `Decrypt` without the attestation conditions). Key
//!   deletion is left out too: losing the key loses every wallet encrypted under it.
//! - `DenyInstanceRoleOtherActions`: an explicit `Deny` to the parent instances' role of every
//!   KMS action but `kms:Decrypt` and `kms:GenerateDataKey` (`NotAction`), and
//!   `DenyInstanceRoleWithoutAttestation`: an explicit `Deny` of those two whenever the request
//!   has no attestation document (`Null` on `kms:RecipientAttestation:ImageSha384`). An explicit
//!   `Deny` wins over any `Allow`, so a statement added later by mistake, or an IAM policy
//!   reaching the role through an account statement, cannot give the role more.
//! - One `EnclaveImage<PCR0 prefix>` statement per measurements file: the parent instances' role
//!   may call `kms:Decrypt` and `kms:GenerateDataKey` only with a `Recipient` whose attestation
//!   document shows that image's PCR0 (`kms:RecipientAttestation:ImageSha384`), PCR1, PCR2 and,
//!   unless `--no-pcr3`, PCR3 (the parent's IAM role), and optionally PCR8 (the EIF's signing
//!   certificate). Several files allow several images at once: the old and the new one during a
//!   rotation. A statement pinning fewer than PCR0, PCR1 and PCR2 is never written.
//! - `KeyImport`, only when asked: `kms:Encrypt` for the principals that run
//!   `nitro-signer keys import`.
//!
//! There is deliberately no `"Principal": {"AWS": "arn:aws:iam::ACCOUNT:root"}, "Action":
//! "kms:*"` statement (KMS's default): with it, any IAM policy in the account could grant
//! `Decrypt` without attestation.

use std::{collections::BTreeMap, io::Write, path::PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use sha2::{Digest, Sha384};

/// Length of a SHA-384 PCR in hex digits.
const PCR_HEX_LEN: usize = 96;

/// Options of `nitro-signer policy`.
#[derive(Debug, clap::Args)]
pub(crate) struct PolicyArgs {
    /// Measurements JSON of an enclave image, as `nitro-cli build-enclave` prints it
    /// (`scripts/build-eif.sh` writes it next to the EIF). Repeat to allow several images, e.g.
    /// the running one and its successor during a rotation; each gets its own statement.
    #[arg(long, required = true, value_name = "FILE")]
    measurements: Vec<PathBuf>,

    /// IAM role of the parent instances (the role inside their instance profile):
    /// `arn:aws:iam::ACCOUNT:role/NAME`. Only this role may decrypt, and only for an attested
    /// enclave.
    #[arg(long, value_name = "ARN")]
    role_arn: String,

    /// AWS account id (12 digits) that owns the key and the role.
    #[arg(long, value_name = "ID")]
    account: String,

    /// Principal that administers the key (describe, change the policy, enable and disable,
    /// rotation, tags, aliases) without being able to use it: a dedicated role or user, e.g.
    /// `arn:aws:iam::ACCOUNT:role/KeyAdmin`. Required. The account's root,
    /// `arn:aws:iam::ACCOUNT:root`, is accepted when given explicitly: then whoever the
    /// account's IAM policies allow may rewrite the key policy.
    #[arg(long, required = true, value_name = "ARN")]
    admin_arn: String,

    /// Do not require PCR3, the measurement of `--role-arn`. By default the policy pins it, so
    /// that only enclaves whose parent instance has that role qualify. Without it, the image
    /// qualifies on any instance whose requests carry the role's credentials (copied from a
    /// parent, or from anything else that can assume the role). Weaker: only for parents whose
    /// role cannot be pinned.
    #[arg(long)]
    no_pcr3: bool,

    /// PCR3 is pinned by default now; this flag is accepted for existing command lines and
    /// changes nothing.
    #[arg(long, hide = true, conflicts_with = "no_pcr3")]
    pcr3: bool,

    /// Also require PCR8, the EIF's signing certificate; every measurements file must have it
    /// (`scripts/build-eif.sh --signing-key … --signing-certificate …`).
    #[arg(long)]
    pcr8: bool,

    /// Allow this principal `kms:Encrypt`, for `nitro-signer keys import`; repeat for several.
    /// Whoever can encrypt can make key blobs whose secret they know: keep it to the people who
    /// import keys, never the parent instances' role.
    #[arg(long, value_name = "ARN")]
    import_principal: Vec<String>,

    /// Accept all-zero PCRs, which is what a debug-mode enclave reports. Every debug-mode
    /// enclave, whatever its image, could then decrypt: never for a production key.
    #[arg(long)]
    allow_debug: bool,

    /// Write the policy to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// One image's measurements: PCR index → lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Measurements(BTreeMap<u8, String>);

impl Measurements {
    /// Parses `nitro-cli`'s output (`{"Measurements": {"HashAlgorithm": "Sha384 { ... }",
    /// "PCR0": …}}`) or the inner object alone.
    pub(crate) fn parse(json: &str) -> anyhow::Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json).context("not JSON")?;
        let inner = value.get("Measurements").unwrap_or(&value);
        let map = inner
            .as_object()
            .context("expected {\"Measurements\": {\"PCR0\": …}} as nitro-cli prints it")?;
        let mut pcrs = BTreeMap::new();
        for (key, value) in map {
            if key == "HashAlgorithm" {
                let algorithm = value.as_str().unwrap_or_default();
                if !algorithm.starts_with("Sha384") {
                    bail!("HashAlgorithm is {value}, expected Sha384");
                }
                continue;
            }
            let index = key
                .strip_prefix("PCR")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| *n < 32)
                .with_context(|| format!("unexpected field {key:?}"))?;
            let hex = value
                .as_str()
                .with_context(|| format!("{key} is not a string"))?;
            pcrs.insert(index, normalize_pcr(key, hex)?);
        }
        for required in [0, 1, 2] {
            if !pcrs.contains_key(&required) {
                bail!("PCR{required} is missing");
            }
        }
        Ok(Self(pcrs))
    }

    fn get(&self, index: u8) -> Option<&str> {
        self.0.get(&index).map(String::as_str)
    }
}

/// Checks that `hex` is a SHA-384 value (96 hex digits) and lowercases it.
fn normalize_pcr(name: &str, hex: &str) -> anyhow::Result<String> {
    if hex.len() != PCR_HEX_LEN || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{name} must be {PCR_HEX_LEN} hex digits (SHA-384), got {} characters",
            hex.len()
        );
    }
    Ok(hex.to_ascii_lowercase())
}

fn is_all_zero(hex: &str) -> bool {
    hex.bytes().all(|b| b == b'0')
}

/// PCR3 of an enclave whose parent instance has `role_arn`: SHA-384 over 48 zero bytes followed
/// by the ARN (how the Nitro hypervisor extends the register, as AWS documents it).
pub(crate) fn pcr3_for_role(role_arn: &str) -> String {
    let mut hasher = Sha384::new();
    hasher.update([0u8; 48]);
    hasher.update(role_arn.as_bytes());
    hex::encode(hasher.finalize())
}

/// What an IAM principal ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalKind {
    Root,
    Role,
    User,
}

/// A checked IAM principal ARN: `arn:PARTITION:iam::ACCOUNT:root|role/…|user/…`.
struct Principal<'a> {
    partition: &'a str,
    account: &'a str,
    kind: PrincipalKind,
}

fn parse_principal<'a>(what: &str, arn: &'a str) -> anyhow::Result<Principal<'a>> {
    let hint = if arn.contains(":instance-profile/") {
        " (that is an instance profile: give the role inside it, `aws iam get-instance-profile \
         --instance-profile-name NAME` shows it)"
    } else if arn.contains(":assumed-role/") {
        " (that is a role session: give the role itself, arn:aws:iam::ACCOUNT:role/NAME)"
    } else {
        ""
    };
    let shape = || {
        anyhow::anyhow!(
            "{what} {arn:?} is not an IAM principal ARN like arn:aws:iam::111122223333:role/NAME{hint}"
        )
    };
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(shape());
    };
    if !["aws", "aws-cn", "aws-us-gov"].contains(&partition) || !is_account_id(account) {
        return Err(shape());
    }
    let name_ok = |name: &str| {
        !name.is_empty()
            && name.len() <= 512
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
            && !name.ends_with('/')
    };
    let kind = if resource == "root" {
        PrincipalKind::Root
    } else if resource.strip_prefix("role/").is_some_and(name_ok) {
        PrincipalKind::Role
    } else if resource.strip_prefix("user/").is_some_and(name_ok) {
        PrincipalKind::User
    } else {
        return Err(shape());
    };
    Ok(Principal {
        partition,
        account,
        kind,
    })
}

fn is_account_id(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyDocument {
    version: &'static str,
    id: &'static str,
    statement: Vec<Statement>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Statement {
    sid: String,
    effect: &'static str,
    principal: PrincipalBlock,
    /// The actions the statement is about; exactly one of this and `not_action`.
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<Vec<&'static str>>,
    /// Every action but these.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_action: Option<Vec<&'static str>>,
    resource: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<BTreeMap<&'static str, BTreeMap<String, String>>>,
}

#[derive(Serialize)]
struct PrincipalBlock {
    #[serde(rename = "AWS")]
    aws: Vec<String>,
}

/// What the administrator may do: manage, never use. Keep `Decrypt`, `GenerateDataKey*`,
/// `ReEncrypt*`, `Encrypt`, `CreateGrant` and `ScheduleKeyDeletion` out of this list.
const ADMIN_ACTIONS: [&str; 18] = [
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:PutKeyPolicy",
    "kms:ListKeyPolicies",
    "kms:GetKeyRotationStatus",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:CancelKeyDeletion",
    "kms:UpdateKeyDescription",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ListResourceTags",
    "kms:ListGrants",
];

/// What the enclave calls: `Decrypt` for existing blobs, `GenerateDataKey` for new seeds and
/// policy changes. (It calls no `GenerateRandom`, which KMS authorizes by IAM policy alone, not
/// by key policy.) The instance role is denied every other action on the key.
const ENCLAVE_ACTIONS: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];

/// The condition key of PCR0; KMS sets it (and every `kms:RecipientAttestation:*` key) only for
/// a request with a verified attestation document as `Recipient`.
const IMAGE_SHA384: &str = "kms:RecipientAttestation:ImageSha384";

/// The PCRs every image statement pins, whatever the options: image (PCR0), kernel and boot
/// ramdisk (PCR1, the same for every image built with one nitro-cli) and application (PCR2).
const REQUIRED_PCRS: [(u8, &str); 3] = [
    (0, IMAGE_SHA384),
    (1, "kms:RecipientAttestation:PCR1"),
    (2, "kms:RecipientAttestation:PCR2"),
];

/// Everything the policy is made from.
pub(crate) struct PolicyInputs<'a> {
    pub(crate) images: &'a [Measurements],
    pub(crate) role_arn: &'a str,
    pub(crate) account: &'a str,
    pub(crate) admin_arn: &'a str,
    pub(crate) pcr3: bool,
    pub(crate) pcr8: bool,
    pub(crate) import_principals: &'a [String],
    pub(crate) allow_debug: bool,
}

/// Builds the key policy, or says why it will not.
pub(crate) fn build(inputs: &PolicyInputs<'_>) -> anyhow::Result<String> {
    if !is_account_id(inputs.account) {
        bail!(
            "--account {:?} is not a 12-digit AWS account id",
            inputs.account
        );
    }
    let role = parse_principal("--role-arn", inputs.role_arn)?;
    if role.kind != PrincipalKind::Role {
        bail!(
            "--role-arn must name a role (arn:{}:iam::{}:role/NAME)",
            role.partition,
            role.account
        );
    }
    let same_account = |what: &str, p: &Principal<'_>| -> anyhow::Result<()> {
        if p.account != inputs.account || p.partition != role.partition {
            bail!(
                "{what} is in account {} ({}), not --account {} ({})",
                p.account,
                p.partition,
                inputs.account,
                role.partition
            );
        }
        Ok(())
    };
    same_account("--role-arn", &role)?;
    let admin = parse_principal("--admin-arn", inputs.admin_arn)?;
    same_account("--admin-arn", &admin)?;
    let admin = inputs.admin_arn.to_owned();
    if admin == inputs.role_arn {
        bail!(
            "--admin-arn is the parent instances' role: a compromised parent could then rewrite \
             the policy; administer the key with another principal"
        );
    }
    for arn in inputs.import_principals {
        let principal = parse_principal("--import-principal", arn)?;
        same_account("--import-principal", &principal)?;
        if arn == inputs.role_arn {
            bail!(
                "--import-principal is the parent instances' role: whoever can encrypt can make \
                 key blobs whose secret they know; import keys with another principal"
            );
        }
    }
    if inputs.images.is_empty() {
        bail!("no measurements given");
    }

    let role_only = || PrincipalBlock {
        aws: vec![inputs.role_arn.to_owned()],
    };
    let mut statements = vec![
        Statement {
            sid: "KeyAdministration".into(),
            effect: "Allow",
            principal: PrincipalBlock { aws: vec![admin] },
            action: Some(ADMIN_ACTIONS.to_vec()),
            not_action: None,
            resource: "*",
            condition: None,
        },
        Statement {
            sid: "DenyInstanceRoleOtherActions".into(),
            effect: "Deny",
            principal: role_only(),
            action: None,
            not_action: Some(ENCLAVE_ACTIONS.to_vec()),
            resource: "*",
            condition: None,
        },
        Statement {
            sid: "DenyInstanceRoleWithoutAttestation".into(),
            effect: "Deny",
            principal: role_only(),
            action: Some(ENCLAVE_ACTIONS.to_vec()),
            not_action: None,
            resource: "*",
            condition: Some(BTreeMap::from([(
                "Null",
                BTreeMap::from([(IMAGE_SHA384.to_owned(), "true".to_owned())]),
            )])),
        },
    ];
    let pcr3 = pcr3_for_role(inputs.role_arn);
    for (n, image) in inputs.images.iter().enumerate() {
        let which = format!("measurements file {}", n + 1);
        let mut conditions = BTreeMap::new();
        let mut required = REQUIRED_PCRS.to_vec();
        if inputs.pcr8 {
            required.push((8, "kms:RecipientAttestation:PCR8"));
        }
        for (index, key) in required {
            let value = image.get(index).with_context(|| {
                if index == 8 {
                    format!("{which} has no PCR8 (was the EIF signed? see --pcr8)")
                } else {
                    format!("{which} has no PCR{index}: a policy pins at least PCR0, PCR1 and PCR2")
                }
            })?;
            if is_all_zero(value) && !inputs.allow_debug {
                bail!(
                    "{which}: PCR{index} is all zeros, what a debug-mode enclave reports; a \
                     policy trusting it lets every debug-mode enclave decrypt. Refused without \
                     --allow-debug"
                );
            }
            conditions.insert(key.to_owned(), value.to_owned());
        }
        if inputs.pcr3 {
            conditions.insert("kms:RecipientAttestation:PCR3".to_owned(), pcr3.clone());
        }
        // The floor, checked on what is written rather than on how it was assembled.
        if let Some((index, _)) = REQUIRED_PCRS
            .iter()
            .find(|(_, key)| !conditions.contains_key(*key))
        {
            bail!("{which}: refusing a statement that does not pin PCR{index}");
        }
        let pcr0 = image.get(0).unwrap_or_default();
        if inputs
            .images
            .iter()
            .take(n)
            .any(|earlier| earlier.get(0) == Some(pcr0))
        {
            bail!("{which} repeats an earlier image (same PCR0)");
        }
        statements.push(Statement {
            sid: format!("EnclaveImage{}", pcr0.get(..16).unwrap_or(pcr0)),
            effect: "Allow",
            principal: role_only(),
            action: Some(ENCLAVE_ACTIONS.to_vec()),
            not_action: None,
            resource: "*",
            condition: Some(BTreeMap::from([("StringEqualsIgnoreCase", conditions)])),
        });
    }
    if !inputs.import_principals.is_empty() {
        statements.push(Statement {
            sid: "KeyImport".into(),
            effect: "Allow",
            principal: PrincipalBlock {
                aws: inputs.import_principals.to_vec(),
            },
            action: Some(vec!["kms:Encrypt"]),
            not_action: None,
            resource: "*",
            condition: None,
        });
    }
    let document = PolicyDocument {
        version: "2012-10-17",
        id: "nitro-signer-key-policy",
        statement: statements,
    };
    Ok(serde_json::to_string_pretty(&document)?)
}

/// Runs `nitro-signer policy`.
pub(crate) fn run(args: PolicyArgs) -> anyhow::Result<()> {
    let mut images = Vec::new();
    for path in &args.measurements {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        images.push(Measurements::parse(&text).with_context(|| format!("{}", path.display()))?);
    }
    let policy = build(&PolicyInputs {
        images: &images,
        role_arn: &args.role_arn,
        account: &args.account,
        admin_arn: &args.admin_arn,
        pcr3: !args.no_pcr3,
        pcr8: args.pcr8,
        import_principals: &args.import_principal,
        allow_debug: args.allow_debug,
    })?;
    if args.admin_arn.ends_with(":root") {
        tracing::warn!(
            "--admin-arn is the account's root: whoever the account's IAM policies allow may \
             rewrite this key policy; prefer a dedicated administrator role"
        );
    }
    if args.no_pcr3 {
        tracing::warn!(
            "--no-pcr3: the parent's IAM role is not pinned; the image qualifies on any instance \
             whose requests carry the role's credentials"
        );
    }
    if args.allow_debug {
        tracing::warn!(
            "--allow-debug: all-zero (debug-mode) PCRs are accepted; never use this policy for a \
             production key"
        );
    }
    match &args.output {
        Some(path) => std::fs::write(path, format!("{policy}\n"))
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{policy}")?;
            stdout.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn pcr3_matches_the_aws_documentation_example() {
        // "Where to get an enclave's measurements", AWS Nitro Enclaves User Guide.
        assert_eq!(
            pcr3_for_role("arn:aws:iam::123456789012:role/Webserver"),
            "78fce75db17cd4e0a3fb8dad3ad128ca5e77edbb2b2c7f75329dccd99aa5f6ef\
             4fc1f1a452e315b9e98f9e312e6921e6"
        );
    }

    #[test]
    fn measurements_are_checked() {
        let pcr = |c: char| c.to_string().repeat(96);
        let good = format!(
            r#"{{"Measurements":{{"HashAlgorithm":"Sha384 {{ ... }}","PCR0":"{}","PCR1":"{}","PCR2":"{}"}}}}"#,
            pcr('A'),
            pcr('b'),
            pcr('c')
        );
        let m = Measurements::parse(&good).unwrap();
        assert_eq!(m.get(0), Some(pcr('a').as_str()));
        // The inner object alone is accepted too.
        let inner = format!(
            r#"{{"PCR0":"{}","PCR1":"{}","PCR2":"{}"}}"#,
            pcr('a'),
            pcr('b'),
            pcr('c')
        );
        assert_eq!(Measurements::parse(&inner).unwrap(), m);
        for bad in [
            good.replace("Sha384", "Sha256"),
            good.replace(&pcr('b'), &"b".repeat(64)),
            good.replace(&pcr('b'), &"g".repeat(96)),
            good.replace("PCR2", "PCRx"),
            good.replace(&format!(r#","PCR2":"{}""#, pcr('c')), ""),
            "[]".to_owned(),
        ] {
            assert!(Measurements::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_statement_pins_fewer_than_pcr0_pcr1_and_pcr2() {
        let pcr = |c: char| c.to_string().repeat(96);
        let full = BTreeMap::from([(0u8, pcr('a')), (1, pcr('b')), (2, pcr('c')), (8, pcr('d'))]);
        let inputs = |images: &[Measurements]| -> anyhow::Result<String> {
            build(&PolicyInputs {
                images,
                role_arn: "arn:aws:iam::123456789012:role/parent",
                account: "123456789012",
                admin_arn: "arn:aws:iam::123456789012:role/admin",
                pcr3: false,
                pcr8: true,
                import_principals: &[],
                allow_debug: false,
            })
        };
        assert!(inputs(&[Measurements(full.clone())]).is_ok());
        for missing in [0u8, 1, 2] {
            let mut pcrs = full.clone();
            pcrs.remove(&missing);
            let error = inputs(&[Measurements(pcrs)]).unwrap_err().to_string();
            assert!(error.contains(&format!("PCR{missing}")), "{error}");
            assert!(error.contains("PCR0, PCR1 and PCR2"), "{error}");
        }
    }

    #[test]
    fn principals_are_checked() {
        assert!(parse_principal("x", "arn:aws:iam::123456789012:role/a/b-c").is_ok());
        assert!(parse_principal("x", "arn:aws-cn:iam::123456789012:root").is_ok());
        for bad in [
            "arn:aws:iam::123456789012:instance-profile/p",
            "arn:aws:sts::123456789012:assumed-role/r/i-0",
            "arn:aws:iam::12345678901:role/r",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:group/g",
            "arn:aws:iam:us-east-1:123456789012:role/r",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(parse_principal("x", bad).is_err(), "{bad}");
        }
    }
}
