//! Log levels every nitro-signer binary enforces, whatever `RUST_LOG` asks for.
//!
//! Some dependencies log request bodies or wire bytes at `trace` or `debug`: the AWS SDK's
//! orchestrator logs whole requests (a `keys import` request body holds the secret being
//! imported), and HTTP and TLS libraries log frames. Each binary adds these directives after the
//! ones from the environment, so that the most verbose setting still cannot make a secret reach a
//! log. The end-to-end tests run the whole stack at `RUST_LOG=trace` and search the output for
//! secrets.

/// `target=level` directives that cap dependencies at `info`.
pub const DEPENDENCY_CAPS: &[&str] = &[
    "aws_smithy_runtime=info",
    "aws_smithy_runtime_api=info",
    "aws_smithy_http_client=info",
    "aws_smithy_types=info",
    "aws_sigv4=info",
    "aws_sdk_kms=info",
    "aws_config=info",
    "aws_credential_types=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "rustls=info",
    "tokio_rustls=info",
    "reqwest=info",
];

/// How logs are written on standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "binary", derive(clap::ValueEnum))]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up logging on standard error: `RUST_LOG` (default `info`), then [`DEPENDENCY_CAPS`].
#[cfg(feature = "binary")]
pub fn init(format: LogFormat) {
    use std::io::IsTerminal;

    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for cap in DEPENDENCY_CAPS {
        if let Ok(directive) = cap.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cap_is_a_valid_directive() {
        for cap in DEPENDENCY_CAPS {
            let (target, level) = cap.split_once('=').unwrap();
            assert!(!target.is_empty() && level == "info", "{cap}");
        }
    }
}
