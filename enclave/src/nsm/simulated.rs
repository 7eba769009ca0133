//! A simulated NSM that issues attestation documents in the real format.
//!
//! The chain is shaped like AWS's: a long-lived root (`CN=aws.nitro-enclaves`-like, here
//! `CN=nitro-signer simulated root`), regional, zonal and instance intermediates, and a leaf valid
//! for three hours that signs the documents. Every key is P-384 and every signature ES384. The
//! root key and certificate are kept in the data directory (owner-only files), so a restarted
//! simulator has the same identity and the KMS emulator's trust in it survives restarts; the
//! intermediates and leaf are made fresh at start and renewed before the leaf expires.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, SystemTime},
};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair},
};
use aws_nitro_enclaves_nsm_api::api::{AttestationDoc, Digest};
use nitro_signer_common::protocol::codec::{self, Value};
use nitro_signer_common::{
    attestation::{PCR_LEN, Pcr},
    private_file,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P384_SHA384,
};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::{AttestationRequest, Nsm, NsmError};

/// Root key file in the data directory (PKCS#8 PEM, mode 0600).
const ROOT_KEY_FILE: &str = "nsm-root-key.pem";
/// Root certificate file in the data directory (DER).
const ROOT_CERT_FILE: &str = "nsm-root-cert.der";
/// The root is valid for 30 years, like AWS's.
const ROOT_VALIDITY: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
/// The leaf is valid for three hours, like AWS's.
const LEAF_VALIDITY: Duration = Duration::from_secs(3 * 3600);
/// A new chain is made when the leaf has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(3600);

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Where the root key and certificate live.
    pub data_dir: PathBuf,
    /// PCR values, index → 48 bytes; absent indices read as zero. All zero models a debug-mode
    /// enclave.
    pub pcrs: BTreeMap<u8, Pcr>,
    /// The module id in documents.
    pub module_id: String,
}

impl SimulatorConfig {
    /// The default simulated measurements: PCR0, 1, 2 and 8 set to SHA-384-sized values derived
    /// from their names, everything else zero, so that the simulated enclave is not in debug mode
    /// and a key policy can pin it.
    pub fn default_pcrs() -> BTreeMap<u8, Pcr> {
        [0u8, 1, 2, 8]
            .into_iter()
            .map(|i| {
                let h = aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA384,
                    format!("nitro-signer simulated PCR{i}").as_bytes(),
                );
                let mut pcr = [0u8; PCR_LEN];
                pcr.copy_from_slice(h.as_ref());
                (i, pcr)
            })
            .collect()
    }

    /// A configuration with the default PCRs.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            pcrs: Self::default_pcrs(),
            module_id: "i-00000000000000000-enc0000000000000000".into(),
        }
    }
}

struct Root {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

struct Chain {
    cabundle: Vec<Vec<u8>>,
    leaf_der: Vec<u8>,
    leaf_key: EcdsaKeyPair,
    leaf_not_before: SystemTime,
    leaf_not_after: SystemTime,
}

/// The simulated NSM.
pub struct SimulatedNsm {
    config: SimulatorConfig,
    root: Root,
    chain: Mutex<Chain>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SimulatedNsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedNsm")
            .field("data_dir", &self.config.data_dir)
            .field(
                "root_fingerprint",
                &alloy_primitives::hex::encode(self.root_fingerprint()),
            )
            .finish_non_exhaustive()
    }
}

fn crypto(e: impl std::fmt::Display) -> NsmError {
    NsmError::Crypto(e.to_string())
}

fn storage(path: &Path, e: impl std::fmt::Display) -> NsmError {
    NsmError::Storage(format!("{}: {e}", path.display()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "nitro-signer simulator");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ca_params(common_name: &str, not_before: SystemTime, validity: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = OffsetDateTime::from(not_before);
    params.not_after = OffsetDateTime::from(not_before + validity);
    // Like AWS's certificates (and as RFC 5280 wants for issued ones): name the issuer's key.
    params.use_authority_key_identifier_extension = true;
    params
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), NsmError> {
    private_file::write_private(path, contents).map_err(|e| storage(path, e))
}

impl Root {
    const COMMON_NAME: &'static str = "nitro-signer simulated root";

    fn load_or_create(dir: &Path) -> Result<Self, NsmError> {
        let key_path = dir.join(ROOT_KEY_FILE);
        let cert_path = dir.join(ROOT_CERT_FILE);
        // The issuer only needs the name, key usages and key: the stored certificate keeps the
        // identity (its fingerprint) across restarts.
        let params = ca_params(Self::COMMON_NAME, SystemTime::UNIX_EPOCH, ROOT_VALIDITY);
        if key_path.exists() {
            let pem = fs::read_to_string(&key_path).map_err(|e| storage(&key_path, e))?;
            let key = KeyPair::from_pem(&pem).map_err(crypto)?;
            let der = fs::read(&cert_path).map_err(|e| storage(&cert_path, e))?;
            return Ok(Self { params, key, der });
        }
        private_file::create_private_dir(dir).map_err(|e| storage(dir, e))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(crypto)?;
        let der = ca_params(Self::COMMON_NAME, SystemTime::now(), ROOT_VALIDITY)
            .self_signed(&key)
            .map_err(crypto)?
            .der()
            .to_vec();
        write_private(&cert_path, &der)?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        Ok(Self { params, key, der })
    }
}

impl Chain {
    /// Intermediates (regional 30 days, zonal 7 days, instance 1 day) and a 3-hour leaf.
    fn issue(root: &Root, now: SystemTime) -> Result<Self, NsmError> {
        let day = Duration::from_secs(24 * 3600);
        let mut issuer = Issuer::from_params(&root.params, &root.key);
        let mut cabundle = vec![root.der.clone()];
        let mut keys = Vec::new();
        let levels = [
            ("nitro-signer simulated regional", 30 * day),
            ("nitro-signer simulated zonal", 7 * day),
            ("nitro-signer simulated instance", day),
        ];
        // Each intermediate's key must outlive the issuer borrowing it.
        let mut params_list = Vec::new();
        for (common_name, validity) in levels {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(crypto)?;
            let params = ca_params(common_name, now, validity);
            let cert = params.signed_by(&key, &issuer).map_err(crypto)?;
            cabundle.push(cert.der().to_vec());
            params_list.push(params);
            keys.push(key);
            issuer = Issuer::new(
                params_list
                    .last()
                    .cloned()
                    .ok_or_else(|| crypto("no params"))?,
                keys.last().ok_or_else(|| crypto("no key"))?,
            );
        }
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(crypto)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("i-00000000000000000-enc0000000000000000.sim");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = OffsetDateTime::from(now);
        params.not_after = OffsetDateTime::from(now + LEAF_VALIDITY);
        params.use_authority_key_identifier_extension = true;
        let leaf_der = params
            .signed_by(&leaf_key, &issuer)
            .map_err(crypto)?
            .der()
            .to_vec();
        let leaf_key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &leaf_key.serialize_der())
                .map_err(crypto)?;
        Ok(Self {
            cabundle,
            leaf_der,
            leaf_key,
            leaf_not_before: now,
            leaf_not_after: now + LEAF_VALIDITY,
        })
    }
}

impl SimulatedNsm {
    /// Starts the simulator, creating its root in `config.data_dir` on first use.
    pub fn open(config: SimulatorConfig) -> Result<Self, NsmError> {
        if let Some(index) = config.pcrs.keys().find(|i| **i >= 16) {
            return Err(NsmError::Device(format!(
                "PCR{index}: the NSM has PCRs 0 to 15"
            )));
        }
        let root = Root::load_or_create(&config.data_dir)?;
        let chain = Chain::issue(&root, SystemTime::now())?;
        Ok(Self {
            config,
            root,
            chain: Mutex::new(chain),
            rng: SystemRandom::new(),
        })
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root.der
    }

    /// SHA-256 of the root certificate: what a verifier pins to trust this simulator.
    pub fn root_fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.root.der).into()
    }

    /// The configured PCRs (absent indices are zero).
    pub fn pcrs(&self) -> &BTreeMap<u8, Pcr> {
        &self.config.pcrs
    }

    /// A document as [`Nsm::attest`] makes it, stamped `now` (tests use other times).
    pub fn attest_at(
        &self,
        request: AttestationRequest<'_>,
        now: SystemTime,
    ) -> Result<Vec<u8>, NsmError> {
        request.check()?;
        let mut chain = self
            .chain
            .lock()
            .map_err(|_| crypto("chain lock poisoned"))?;
        // Renew near expiry, and for a time before the chain began (a test's past or a clock
        // that stepped back), so that every document is signed by a leaf valid at its time.
        if chain.leaf_not_after < now + RENEW_BEFORE || now < chain.leaf_not_before {
            *chain = Chain::issue(&self.root, now)?;
        }
        let timestamp = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(crypto)?
            .as_millis()
            .try_into()
            .map_err(crypto)?;
        let pcrs = (0..16u8)
            .map(|i| {
                (
                    usize::from(i),
                    self.config
                        .pcrs
                        .get(&i)
                        .copied()
                        .unwrap_or([0; PCR_LEN])
                        .to_vec(),
                )
            })
            .collect();
        let payload = AttestationDoc::new(
            self.config.module_id.clone(),
            Digest::SHA384,
            timestamp,
            pcrs,
            chain.leaf_der.clone(),
            chain.cabundle.clone(),
            request.user_data.map(<[u8]>::to_vec),
            request.nonce.map(<[u8]>::to_vec),
            request.public_key.map(<[u8]>::to_vec),
        )
        .to_binary();
        // Protected header {1: -35}: alg ES384.
        let protected = codec::encode(&Value::Map(
            [(Value::Integer(1), Value::Integer(-35))]
                .into_iter()
                .collect(),
        ))
        .map_err(crypto)?;
        let to_sign = codec::encode(&Value::Array(vec![
            Value::Text("Signature1".into()),
            Value::Bytes(protected.clone()),
            Value::Bytes(Vec::new()),
            Value::Bytes(payload.clone()),
        ]))
        .map_err(crypto)?;
        let signature = chain.leaf_key.sign(&self.rng, &to_sign).map_err(crypto)?;
        codec::encode(&Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(BTreeMap::new()),
            Value::Bytes(payload),
            Value::Bytes(signature.as_ref().to_vec()),
        ]))
        .map_err(crypto)
    }
}

impl Nsm for SimulatedNsm {
    fn attest(&self, request: AttestationRequest<'_>) -> Result<Vec<u8>, NsmError> {
        self.attest_at(request, SystemTime::now())
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), NsmError> {
        aws_lc_rs::rand::fill(buf).map_err(crypto)
    }

    fn pcr(&self, index: u8) -> Result<Pcr, NsmError> {
        Ok(self
            .config
            .pcrs
            .get(&index)
            .copied()
            .unwrap_or([0; PCR_LEN]))
    }
}
