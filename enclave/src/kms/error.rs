//! What can go wrong with a KMS call, and how an SDK failure becomes one of these.
//!
//! [`KmsError`] is what callers see: fixed sentences that repeat nothing KMS said. `classify`
//! turns an `aws-sdk-kms` error into one and logs the SDK's own account of it in the enclave.

use std::time::Duration;

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use tracing::warn;

/// Why a KMS operation failed.
///
/// Every message is a fixed sentence (bounded; at most a sanitized KMS error code and a duration
/// are filled in) that says what happened and what to check. None repeats text from KMS's
/// answer: KMS's messages name the instance role, the account and key ARNs, which the HTTP
/// caller has no need to see. The full SDK error, KMS's message included, is logged in the
/// enclave at `warn` level when the call fails (SDK errors carry no key material and no
/// credentials: see `classify` in this module's source for why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// No AWS credentials, or only expired ones.
    #[error("no valid AWS credentials; the parent proxy sends them when it connects")]
    NoCredentials,
    /// KMS refused access to the key for this operation: the key policy (its attestation
    /// conditions) or the instance role's permissions.
    #[error(
        "KMS denied {0}: check the key policy's attestation conditions (the PCRs of this enclave \
         image) and the instance role's permissions on the key"
    )]
    AccessDenied(Operation),
    /// KMS refused the key blob's ciphertext.
    #[error("{0}")]
    InvalidCiphertext(CiphertextRefusal),
    /// KMS could not be reached.
    #[error("{0}")]
    Unreachable(Unreachable),
    /// KMS did not answer in time, retries included; the time waited.
    #[error(
        "KMS did not answer within {:.1} s: check the vsock-proxy on the parent (the KMS emulator \
         in simulated mode) and KMS's health in the region",
        .0.as_secs_f64()
    )]
    TimedOut(Duration),
    /// KMS throttled the request: the account's request quota in the region is used up.
    #[error("KMS throttled the request ({0}); retry later")]
    Throttled(ServiceCode),
    /// KMS refused the AWS credentials the parent forwarded (unknown, expired, or a signature
    /// that does not verify, which a wrong clock also causes).
    #[error(
        "KMS rejected the AWS credentials ({0}): check the instance role's credentials that the \
         parent proxy forwards, and the enclave's clock"
    )]
    CredentialsRejected(ServiceCode),
    /// The KMS key cannot be used: missing, disabled, pending deletion, or of the wrong kind.
    #[error(
        "the KMS key cannot be used ({0}): check that it exists in this region, is enabled, and is \
         a symmetric encryption key"
    )]
    KeyUnusable(ServiceCode),
    /// KMS failed on its side.
    #[error("KMS failed ({0}); retry later")]
    ServiceFailure(ServiceCode),
    /// KMS refused the request for another reason.
    #[error("KMS refused the request ({0}); the enclave's log has KMS's explanation")]
    Refused(ServiceCode),
    /// KMS answered something the enclave cannot use.
    #[error("KMS's answer is unusable: {0}")]
    BadResponse(&'static str),
    /// The NSM could not produce the attestation document KMS needs.
    #[error(
        "the enclave could not attest itself to KMS: the NSM failed (details in the enclave's log)"
    )]
    Attestation,
    /// The enclave could not build or send its request (a bug or a misconfiguration).
    #[error("the enclave could not send its request to KMS (details in the enclave's log)")]
    RequestFailed,
    /// Too many KMS calls are in flight in this enclave; retry later.
    #[error("too many KMS calls in flight; retry later")]
    Busy,
    /// The parent sent unusable credentials.
    #[error("credentials: {0}")]
    InvalidCredentials(String),
    /// KMS answered for another key than the one asked for.
    #[error(
        "KMS answered for another key than the one asked for: check that --kms-key-id and \
         --allowed-kms-keys name keys by their full ARNs (both keys are in the enclave's log)"
    )]
    WrongKey {
        /// The key ARN asked for.
        configured: String,
        /// The key KMS named.
        answered: String,
    },
}

/// The KMS operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `Decrypt`, of a key blob.
    Decrypt,
    /// `GenerateDataKey`, for a new master seed.
    GenerateDataKey,
}

impl Operation {
    /// The KMS operation's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decrypt => "Decrypt",
            Self::GenerateDataKey => "GenerateDataKey",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why KMS refused a key blob's ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CiphertextRefusal {
    /// `InvalidCiphertextException`.
    #[error(
        "KMS refused the key blob: its ciphertext was altered, or its kind, owner or policy differ \
         from those it was encrypted with"
    )]
    Invalid,
    /// `IncorrectKeyException`.
    #[error("KMS refused the key blob: it was not encrypted under the KMS key it names")]
    IncorrectKey,
    /// `InvalidKeyUsageException`.
    #[error("KMS refused the key blob: the KMS key it names is not a symmetric encryption key")]
    KeyUsage,
    /// `NotFoundException`.
    #[error(
        "KMS refused the key blob: the KMS key it names does not exist in this region (or is not \
         visible to the instance role)"
    )]
    KeyNotFound,
}

/// Why KMS could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unreachable {
    /// No connection, or it closed before the answer.
    #[error(
        "KMS is unreachable (connection failed or closed): check the vsock-proxy on the parent \
         (the KMS emulator in simulated mode)"
    )]
    Connection,
    /// The TLS handshake failed: the other end did not prove it is the KMS host.
    #[error(
        "KMS is unreachable (TLS handshake failed: the server did not prove it is KMS): check that \
         the parent's vsock-proxy forwards to the region's KMS endpoint"
    )]
    Tls,
}

/// A KMS error code (`ThrottlingException`, …), as KMS named it: at most
/// [`ServiceCode::MAX_LEN`] ASCII letters, digits, `.` and `_`; anything else reads
/// `UnknownError`. It carries no identifier: KMS's codes are a fixed vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCode(String);

impl ServiceCode {
    /// Longest code kept.
    pub const MAX_LEN: usize = 64;

    /// The code `code`, or `UnknownError` when there is none or it does not look like a code.
    pub fn new(code: Option<&str>) -> Self {
        let valid = |code: &&str| {
            !code.is_empty()
                && code.len() <= Self::MAX_LEN
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        };
        Self(code.filter(valid).unwrap_or("UnknownError").to_owned())
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServiceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The [`KmsError`] for a failed SDK call, which took `elapsed`; logs the SDK's own account of
/// it at `warn`.
///
/// What gets logged cannot hold secrets. The SDK builds its errors from: KMS's error answer
/// (`__type` and `message`: identifiers such as role and key ARNs, never key material, since
/// with `Recipient` KMS returns no plaintext at all); connector errors (hyper, rustls, socket
/// errors: addresses and reasons); timeouts (durations); and request-building errors (the
/// credentials provider's "not loaded" message, SigV4's "invalid header value", whose `Display`
/// and `Debug` leave the value out). Credentials never appear: the SDK's `Credentials` prints
/// its secret as `** redacted **` and the session token not at all, and no error holds the
/// signed request. Only the `Display` chain and KMS's code and message are logged, not the
/// `Debug` form (which would add the raw HTTP answer); KMS's message is cut to printable
/// characters and a bounded length, since in simulated mode it comes over plain HTTP.
pub(super) fn classify<E, R>(
    operation: Operation,
    elapsed: Duration,
    error: &SdkError<E, R>,
) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let classified = match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code();
            classify_code(operation, code)
        }
        SdkError::TimeoutError(_) => KmsError::TimedOut(elapsed),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => KmsError::TimedOut(elapsed),
        SdkError::DispatchFailure(failure) if failure.is_user() => KmsError::RequestFailed,
        SdkError::DispatchFailure(_) if is_tls_failure(error) => {
            KmsError::Unreachable(Unreachable::Tls)
        }
        SdkError::DispatchFailure(_) => KmsError::Unreachable(Unreachable::Connection),
        SdkError::ResponseError(_) => {
            KmsError::BadResponse("it was cut off or is not a KMS answer; retry later")
        }
        _ => KmsError::RequestFailed,
    };
    // A service error's chain only repeats KMS's code and message.
    let chain = match error {
        SdkError::ServiceError(_) => String::new(),
        _ => ErrorChain(error).to_string(),
    };
    warn!(
        operation = operation.as_str(),
        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        code = error.code().map(printable).unwrap_or_default(),
        message = error.message().map(printable).unwrap_or_default(),
        error = %chain,
        reported = %classified,
        "KMS call failed"
    );
    classified
}

/// The error for a KMS error answer with `code`.
fn classify_code(operation: Operation, code: Option<&str>) -> KmsError {
    let service_code = || ServiceCode::new(code);
    let refused = |refusal| match operation {
        Operation::Decrypt => KmsError::InvalidCiphertext(refusal),
        // No blob in a generation request: the configured key is the problem.
        Operation::GenerateDataKey => KmsError::KeyUnusable(service_code()),
    };
    match code.unwrap_or_default() {
        "AccessDeniedException" => KmsError::AccessDenied(operation),
        "InvalidCiphertextException" => refused(CiphertextRefusal::Invalid),
        "IncorrectKeyException" => refused(CiphertextRefusal::IncorrectKey),
        "InvalidKeyUsageException" => refused(CiphertextRefusal::KeyUsage),
        "NotFoundException" => refused(CiphertextRefusal::KeyNotFound),
        "DisabledException" | "KMSInvalidStateException" => KmsError::KeyUnusable(service_code()),
        // The parent's credentials are wrong: a server-side problem, not the caller's.
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "SignatureDoesNotMatch"
        | "RequestExpired" => KmsError::CredentialsRejected(service_code()),
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "LimitExceededException" => KmsError::Throttled(service_code()),
        "KMSInternalException"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "InternalFailure"
        | "InternalError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => KmsError::ServiceFailure(service_code()),
        _ => KmsError::Refused(service_code()),
    }
}

/// Whether a dispatch failure is a failed TLS handshake: rustls's errors reach the connector as
/// an I/O error of kind `InvalidData` (tokio-rustls's), possibly wrapped in another I/O error
/// (hyper-rustls's); the socket errors of a lost connection have other kinds. An `io::Error`'s
/// `source()` skips its payload, so the walk visits payloads itself.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    // Bounded, in case a chain ever loops.
    for _ in 0..32 {
        let Some(error) = next else {
            return false;
        };
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::InvalidData => return true,
            Some(io) => io
                .get_ref()
                .map(|payload| payload as &(dyn std::error::Error + 'static))
                .or_else(|| error.source()),
            None => error.source(),
        };
    }
    false
}

/// An error and its sources, as `a: b: c`, by `Display` only.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(source) = next {
            write!(f, ": {source}")?;
            next = source.source();
        }
        Ok(())
    }
}

/// `text` for a log line: control characters replaced, at most 512 characters.
pub(super) fn printable(text: &str) -> String {
    const MAX: usize = 512;
    text.chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE_ARN: &str = "arn:aws:sts::111122223333:assumed-role/signer-role/i-0123456789abcdef0";
    const KEY_ARN: &str =
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn service_error(code: &str) -> SdkError<aws_sdk_kms::operation::decrypt::DecryptError, ()> {
        let message = format!(
            "User: {ROLE_ARN} is not authorized to perform: kms:Decrypt on resource: {KEY_ARN} \
             because no resource-based policy allows the kms:Decrypt action"
        );
        SdkError::service_error(
            aws_sdk_kms::operation::decrypt::DecryptError::generic(
                aws_sdk_kms::error::ErrorMetadata::builder()
                    .code(code)
                    .message(message)
                    .build(),
            ),
            (),
        )
    }

    /// The message a caller sees: a bounded sentence, without anything KMS said.
    fn caller_sees(error: &KmsError) -> String {
        let text = error.to_string();
        for leak in [
            "111122223333",
            "arn:",
            "signer-role",
            "1234abcd",
            "not authorized",
        ] {
            assert!(!text.contains(leak), "{leak:?} reaches the caller: {text}");
        }
        assert!(text.len() < 300, "{text}");
        assert!(!text.contains('{') && !text.contains("Failure"), "{text}");
        text
    }

    #[test]
    fn kms_error_answers_become_plain_sentences_without_kms_identifiers() {
        let second = Duration::from_secs(1);
        let classify = |operation, code| classify(operation, second, &service_error(code));

        let denied = classify(Operation::Decrypt, "AccessDeniedException");
        assert_eq!(denied, KmsError::AccessDenied(Operation::Decrypt));
        assert!(caller_sees(&denied).contains("check the key policy's attestation conditions"));
        assert!(
            caller_sees(&classify(
                Operation::GenerateDataKey,
                "AccessDeniedException"
            ))
            .starts_with("KMS denied GenerateDataKey")
        );

        for (code, refusal) in [
            ("InvalidCiphertextException", CiphertextRefusal::Invalid),
            ("IncorrectKeyException", CiphertextRefusal::IncorrectKey),
            ("InvalidKeyUsageException", CiphertextRefusal::KeyUsage),
            ("NotFoundException", CiphertextRefusal::KeyNotFound),
        ] {
            let error = classify(Operation::Decrypt, code);
            assert_eq!(error, KmsError::InvalidCiphertext(refusal));
            assert!(caller_sees(&error).starts_with("KMS refused the key blob"));
            // Generation sends no blob: the configured key is what is wrong.
            let error = classify(Operation::GenerateDataKey, code);
            assert!(matches!(error, KmsError::KeyUnusable(_)), "{error:?}");
            assert!(caller_sees(&error).contains(code));
        }

        let throttled = classify(Operation::Decrypt, "ThrottlingException");
        assert!(matches!(throttled, KmsError::Throttled(_)), "{throttled:?}");
        assert_eq!(
            caller_sees(&throttled),
            "KMS throttled the request (ThrottlingException); retry later"
        );
        for code in ["UnrecognizedClientException", "ExpiredTokenException"] {
            let error = classify(Operation::Decrypt, code);
            assert!(
                matches!(error, KmsError::CredentialsRejected(_)),
                "{error:?}"
            );
            assert!(caller_sees(&error).contains("credentials"));
        }
        for code in ["DisabledException", "KMSInvalidStateException"] {
            let error = classify(Operation::Decrypt, code);
            assert!(matches!(error, KmsError::KeyUnusable(_)), "{error:?}");
        }
        let failed = classify(Operation::Decrypt, "KMSInternalException");
        assert_eq!(
            caller_sees(&failed),
            "KMS failed (KMSInternalException); retry later"
        );
        let other = classify(Operation::Decrypt, "ValidationException");
        assert!(matches!(other, KmsError::Refused(_)), "{other:?}");
        caller_sees(&other);
        // A code is repeated only when it looks like one.
        for hostile in [
            "Bad Code\nforged log line",
            "arn:aws:iam::111122223333:root",
        ] {
            let error = classify(Operation::Decrypt, hostile);
            assert_eq!(
                caller_sees(&error),
                "KMS refused the request (UnknownError); the enclave's log has KMS's explanation"
            );
        }
        assert_eq!(
            ServiceCode::new(Some(&"A".repeat(65))).as_str(),
            "UnknownError"
        );
        assert_eq!(ServiceCode::new(None).as_str(), "UnknownError");
    }

    #[test]
    fn transport_failures_say_what_to_check_not_how_the_sdk_failed() {
        type Error = SdkError<aws_sdk_kms::operation::decrypt::DecryptError, ()>;
        let io = |kind, text: &str| {
            Error::dispatch_failure(aws_sdk_kms::error::ConnectorError::io(Box::new(
                std::io::Error::new(kind, text.to_owned()),
            )))
        };
        let took = Duration::from_millis(8_012);

        let refused = classify(
            Operation::Decrypt,
            took,
            &io(std::io::ErrorKind::ConnectionRefused, "connection refused"),
        );
        assert_eq!(refused, KmsError::Unreachable(Unreachable::Connection));
        let text = caller_sees(&refused);
        assert!(text.starts_with("KMS is unreachable"), "{text}");
        assert!(
            text.contains("check the vsock-proxy on the parent"),
            "{text}"
        );

        let tls = classify(
            Operation::Decrypt,
            took,
            &io(
                std::io::ErrorKind::InvalidData,
                "invalid peer certificate: UnknownIssuer",
            ),
        );
        assert_eq!(tls, KmsError::Unreachable(Unreachable::Tls));
        assert!(caller_sees(&tls).contains("TLS"));
        // As hyper-rustls hands it over: the TLS error inside another I/O error.
        let wrapped = Error::dispatch_failure(aws_sdk_kms::error::ConnectorError::other(
            Box::new(std::io::Error::other(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "invalid peer certificate: NotValidForName",
            ))),
            None,
        ));
        assert_eq!(
            classify(Operation::Decrypt, took, &wrapped),
            KmsError::Unreachable(Unreachable::Tls)
        );

        let timed_out = classify(Operation::Decrypt, took, &Error::timeout_error("too slow"));
        assert_eq!(timed_out, KmsError::TimedOut(took));
        assert!(caller_sees(&timed_out).starts_with("KMS did not answer within 8.0 s"));
        let connect_timeout = Error::dispatch_failure(aws_sdk_kms::error::ConnectorError::timeout(
            "connect timed out".into(),
        ));
        assert_eq!(
            classify(Operation::Decrypt, took, &connect_timeout),
            KmsError::TimedOut(took)
        );

        let cut_off = Error::response_error("incomplete body", ());
        assert!(caller_sees(&classify(Operation::Decrypt, took, &cut_off)).contains("cut off"));
        let unbuilt = Error::construction_failure("credentials not loaded");
        assert_eq!(
            classify(Operation::Decrypt, took, &unbuilt),
            KmsError::RequestFailed
        );
    }

    #[test]
    fn every_message_is_a_bounded_sentence() {
        let code = || ServiceCode::new(Some(&"X".repeat(ServiceCode::MAX_LEN)));
        for error in [
            KmsError::NoCredentials,
            KmsError::AccessDenied(Operation::GenerateDataKey),
            KmsError::InvalidCiphertext(CiphertextRefusal::KeyNotFound),
            KmsError::Unreachable(Unreachable::Tls),
            KmsError::TimedOut(Duration::from_secs(3600)),
            KmsError::Throttled(code()),
            KmsError::CredentialsRejected(code()),
            KmsError::KeyUnusable(code()),
            KmsError::ServiceFailure(code()),
            KmsError::Refused(code()),
            KmsError::BadResponse("it has no CiphertextBlob"),
            KmsError::Attestation,
            KmsError::RequestFailed,
            KmsError::Busy,
            KmsError::WrongKey {
                configured: KEY_ARN.into(),
                answered: KEY_ARN.replace("1234abcd", "evil"),
            },
        ] {
            caller_sees(&error);
        }
    }
}
