//! The audit log: every receipt the parent proxy received, as JSON lines a custodian keeps, and
//! the checker that says what such a log proves.
//!
//! Three kinds of line ([`Line`]), one JSON object each:
//!
//! - `{"type":"boot","receiptKey":"0x…","nonce":"0x…","attestation":"<base64>"}`: an attestation
//!   document the proxy fetched for `nonce` when it first saw the receipt key (and again at the
//!   start of every file and every proxy start). It binds the key: `public_key` is the key's
//!   SubjectPublicKeyInfo, `user_data` is `nitro-signer/receipt-key/v1`.
//! - `{"type":"receipt","receiptKey","sequence","operation","time","keyId","userId","address",
//!   "items","statement":"0x…","signature":"0x…"}`: one receipt. The fields before `statement`
//!   summarize the statement for people; only the statement and signature are trusted.
//! - `{"type":"gap","receiptKey","from","to"}`: the proxy says that it does not have the
//!   receipts `from..=to` of that boot (it never received them, or they came too late).
//!
//! Hex is `0x` and lower case; numbers are JSON integers; `userId` and `address` are `null`
//! when the statement names none. The proxy writes a boot's receipts in sequence order.
//!
//! [`Checker`] reads lines in order (across files, oldest first) and verifies every boot's
//! attestation document against a pinned root and PCR0, PCR1 and PCR2, every receipt's signature
//! with its boot's attested key, each summary against its statement, and that each boot's
//! sequence numbers continue without gaps. The proxy that writes the log is not trusted: the log
//! proves that what it holds was done by the attested enclave, and its sequence numbers reveal
//! what it lacks; nothing proves that a boot had no receipts after the last one in the log.

mod check;
mod line;

pub use check::{BootReport, Checker, Finding, FindingKind, Report};
pub use line::{
    BootLine, GapLine, Line, LineError, MAX_LINE_LEN, ReceiptLine, Summary, hex, parse_hex,
};

/// A time as `YYYYMMDDTHHMMSSZ` (UTC), as rotated audit files are named.
pub fn utc_compact(ms_since_epoch: u64) -> String {
    let (year, month, day, hour, minute, second) = utc_fields(ms_since_epoch);
    format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z")
}

/// A time as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, RFC 3339).
pub fn utc_rfc3339(ms_since_epoch: u64) -> String {
    let (year, month, day, hour, minute, second) = utc_fields(ms_since_epoch);
    let ms = ms_since_epoch % 1000;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{ms:03}Z")
}

/// Year, month, day, hour, minute, second of a Unix time in milliseconds (proleptic Gregorian
/// calendar, from the days-since-epoch algorithm of Howard Hinnant's `civil_from_days`).
fn utc_fields(ms_since_epoch: u64) -> (u64, u64, u64, u64, u64, u64) {
    let secs = ms_since_epoch / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(utc_compact(0), "19700101T000000Z");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.789.
        assert_eq!(utc_rfc3339(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(utc_compact(1_764_770_000_123), "20251203T135320Z");
        assert_eq!(utc_compact(4_107_542_399_000), "21000228T235959Z");
        assert_eq!(utc_compact(4_107_542_400_000), "21000301T000000Z");
    }
}
