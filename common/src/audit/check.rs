//! [`Checker`]: what an audit log proves, line by line. No I/O: the caller reads the files.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    time::{Duration, SystemTime},
};

use super::line::{BootLine, GapLine, Line, ReceiptLine, hex};
use crate::{
    attestation::{AttestationDocument, Expectations, Pcr, RootOfTrust, Verifier},
    receipt::{RECEIPT_KEY_USER_DATA, Statement, receipt_key_spki},
};

/// What is wrong with a line, or what a log lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FindingKind {
    /// Sequence numbers of a boot are missing and no gap line accounts for them: receipts were
    /// removed, or the proxy never had them and did not say so.
    UndeclaredGap,
    /// A receipt's sequence number does not follow the previous one of its boot: lines were
    /// moved, or a receipt appears twice.
    Reordered,
    /// The receipt's signature does not verify with its boot's attested key: forged or altered.
    BadSignature,
    /// A receipt (or gap) of a receipt key that no verified boot line before it attests.
    UnknownBoot,
    /// A line that is not one of the documented line types, or whose statement does not decode.
    MalformedLine,
    /// A receipt line whose summary fields disagree with its (genuine) statement.
    SummaryMismatch,
    /// A boot line whose attestation document does not verify or does not bind its receipt key.
    BadAttestation,
    /// A gap line: the proxy declares that it does not have these receipts.
    DeclaredGap,
    /// A receipt inside a range a gap line declared missing: it came to the proxy after the
    /// proxy had given up waiting for it.
    LateReceipt,
}

impl FindingKind {
    /// The name in reports (`snake_case`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UndeclaredGap => "undeclared_gap",
            Self::Reordered => "reordered",
            Self::BadSignature => "bad_signature",
            Self::UnknownBoot => "unknown_boot",
            Self::MalformedLine => "malformed_line",
            Self::SummaryMismatch => "summary_mismatch",
            Self::BadAttestation => "bad_attestation",
            Self::DeclaredGap => "declared_gap",
            Self::LateReceipt => "late_receipt",
        }
    }

    /// Whether the proxy declared this itself (a gap line, or a receipt that a gap line had
    /// given up on): the log is honest about it, but incomplete.
    pub fn is_declared(self) -> bool {
        matches!(self, Self::DeclaredGap | Self::LateReceipt)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding, at a line of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file, as the index the caller gave [`Checker::check_line`].
    pub file: usize,
    /// The line number in that file, from 1.
    pub line: u64,
    /// What kind of finding.
    pub kind: FindingKind,
    /// What exactly, for people.
    pub detail: String,
}

/// What the log says about one receipt key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// The boot's receipt key.
    pub receipt_key: [u8; 32],
    /// Whether a boot line verified: only then are its receipts trusted.
    pub verified: bool,
    /// The NSM module id of the first verified document.
    pub module_id: Option<String>,
    /// PCR0, PCR1 and PCR2 of the verified documents (the pinned values).
    pub pcrs: Option<[Pcr; 3]>,
    /// The first verified document's time, in milliseconds since the Unix epoch.
    pub attested_at_ms: Option<u64>,
    /// Whether the documents chain to a simulator's root: they then prove nothing about hardware.
    pub simulated: bool,
    /// Boot lines whose document verified.
    pub documents: u64,
    /// Lowest sequence number of a verified receipt.
    pub first_sequence: Option<u64>,
    /// Highest sequence number of a verified receipt.
    pub last_sequence: Option<u64>,
    /// Verified receipts.
    pub receipts: u64,
    /// Sequence numbers that gap lines declared missing and that never came.
    pub missing_declared: u64,
    /// Sequence numbers missing without a gap line.
    pub missing_undeclared: u64,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every receipt key seen, in order of first appearance.
    pub boots: Vec<BootReport>,
    /// Every finding, in file and line order.
    pub findings: Vec<Finding>,
    /// Lines read.
    pub lines: u64,
    /// Receipt lines read (verified or not).
    pub receipt_lines: u64,
}

impl Report {
    /// Whether the log passes: no finding at all, or (with `allow_declared_gaps`) only
    /// findings the proxy declared itself.
    pub fn passed(&self, allow_declared_gaps: bool) -> bool {
        self.findings
            .iter()
            .all(|f| allow_declared_gaps && f.kind.is_declared())
    }
}

/// An attested boot.
#[derive(Debug)]
struct Attested {
    module_id: String,
    timestamp_ms: u64,
    pcrs: [Pcr; 3],
    simulated: bool,
}

/// A range of sequence numbers not (yet) in the log.
#[derive(Debug, Clone, Copy)]
struct Missing {
    to: u64,
    declared: bool,
    file: usize,
    line: u64,
}

#[derive(Debug)]
struct Boot {
    receipt_key: [u8; 32],
    attested: Option<Attested>,
    documents: u64,
    first: Option<u64>,
    highest: Option<u64>,
    receipts: u64,
    /// Every sequence number up to here is in the log or in `missing`.
    last: u64,
    /// Missing ranges by their first number.
    missing: BTreeMap<u64, Missing>,
    /// The finding for this key's first unattested line, and how many followed.
    unknown: Option<(usize, u64)>,
}

impl Boot {
    fn new(receipt_key: [u8; 32]) -> Self {
        Self {
            receipt_key,
            attested: None,
            documents: 0,
            first: None,
            highest: None,
            receipts: 0,
            last: 0,
            missing: BTreeMap::new(),
            unknown: None,
        }
    }

    /// Takes `sequence` out of the missing range holding it; that range, if any.
    fn fill(&mut self, sequence: u64) -> Option<(u64, Missing)> {
        let (&from, &range) = self.missing.range(..=sequence).next_back()?;
        if sequence > range.to {
            return None;
        }
        self.missing.remove(&from);
        if from < sequence {
            self.missing.insert(
                from,
                Missing {
                    to: sequence - 1,
                    ..range
                },
            );
        }
        if sequence < range.to {
            self.missing.insert(sequence + 1, range);
        }
        Some((from, range))
    }

    fn missing_count(&self, declared: bool) -> u64 {
        self.missing
            .iter()
            .filter(|(_, m)| m.declared == declared)
            .map(|(from, m)| (m.to - from).saturating_add(1))
            .fold(0, u64::saturating_add)
    }
}

/// Checks an audit log line by line (see the [module](super) docs for what is checked).
///
/// Feed every line of every file in order, oldest file first, then take the [`Report`] with
/// [`Self::finish`]. State carries across files: a boot that spans a rotation is one boot.
#[derive(Debug)]
pub struct Checker {
    root: RootOfTrust,
    pcrs: [Pcr; 3],
    boots: Vec<Boot>,
    by_key: HashMap<[u8; 32], usize>,
    findings: Vec<Finding>,
    lines: u64,
    receipt_lines: u64,
}

/// Where a line is.
#[derive(Debug, Clone, Copy)]
struct At {
    file: usize,
    line: u64,
}

/// The first 8 bytes of a receipt key, for messages.
fn short(key: &[u8; 32]) -> String {
    format!("{}…", hex(key.get(..8).unwrap_or_default()))
}

impl Checker {
    /// A checker trusting boots whose attestation documents chain to `root` and show exactly
    /// `pcrs` as PCR0, PCR1 and PCR2 (all three are always pinned; debug enclaves are refused).
    pub fn new(root: RootOfTrust, pcrs: [Pcr; 3]) -> Self {
        Self {
            root,
            pcrs,
            boots: Vec::new(),
            by_key: HashMap::new(),
            findings: Vec::new(),
            lines: 0,
            receipt_lines: 0,
        }
    }

    /// Checks line `line` (from 1) of file `file` (an index of the caller's choosing), without
    /// its newline.
    pub fn check_line(&mut self, file: usize, line: u64, bytes: &[u8]) {
        self.lines += 1;
        let at = At { file, line };
        match Line::parse(bytes) {
            Ok(Line::Boot(boot)) => self.boot_line(at, &boot),
            Ok(Line::Receipt(receipt)) => self.receipt_line(at, &receipt),
            Ok(Line::Gap(gap)) => self.gap_line(at, &gap),
            Err(error) => self.finding(at, FindingKind::MalformedLine, error.to_string()),
        }
    }

    /// The report: per boot, and every finding in file and line order.
    pub fn finish(mut self) -> Report {
        for boot in &self.boots {
            for (from, missing) in &boot.missing {
                if !missing.declared {
                    self.findings.push(Finding {
                        file: missing.file,
                        line: missing.line,
                        kind: FindingKind::UndeclaredGap,
                        detail: format!(
                            "sequence numbers {from}..={} of boot {} are not in the log, and no \
                             gap line says so",
                            missing.to,
                            short(&boot.receipt_key)
                        ),
                    });
                }
            }
            if let Some((index, more)) = boot.unknown
                && more > 0
                && let Some(finding) = self.findings.get_mut(index)
            {
                finding
                    .detail
                    .push_str(&format!(" ({more} more lines of this key follow)"));
            }
        }
        self.findings.sort_by_key(|f| (f.file, f.line));
        let boots = self
            .boots
            .iter()
            .map(|boot| BootReport {
                receipt_key: boot.receipt_key,
                verified: boot.attested.is_some(),
                module_id: boot.attested.as_ref().map(|a| a.module_id.clone()),
                pcrs: boot.attested.as_ref().map(|a| a.pcrs),
                attested_at_ms: boot.attested.as_ref().map(|a| a.timestamp_ms),
                simulated: boot.attested.as_ref().is_some_and(|a| a.simulated),
                documents: boot.documents,
                first_sequence: boot.first,
                last_sequence: boot.highest,
                receipts: boot.receipts,
                missing_declared: boot.missing_count(true),
                missing_undeclared: boot.missing_count(false),
            })
            .collect();
        Report {
            boots,
            findings: self.findings,
            lines: self.lines,
            receipt_lines: self.receipt_lines,
        }
    }

    fn finding(&mut self, at: At, kind: FindingKind, detail: String) {
        self.findings.push(Finding {
            file: at.file,
            line: at.line,
            kind,
            detail,
        });
    }

    fn boot_index(&mut self, key: [u8; 32]) -> usize {
        let boots = &mut self.boots;
        *self.by_key.entry(key).or_insert_with(|| {
            boots.push(Boot::new(key));
            boots.len() - 1
        })
    }

    /// The attested boot of `key`, or `None` after reporting (or counting) an unknown boot.
    fn attested_boot(&mut self, at: At, key: [u8; 32]) -> Option<usize> {
        let index = self.boot_index(key);
        let next_finding = self.findings.len();
        let boot = self.boots.get_mut(index)?;
        if boot.attested.is_some() {
            return Some(index);
        }
        match &mut boot.unknown {
            Some((_, more)) => *more += 1,
            None => {
                boot.unknown = Some((next_finding, 0));
                self.finding(
                    at,
                    FindingKind::UnknownBoot,
                    format!(
                        "receipt key {} has no verified boot line before this line",
                        short(&key)
                    ),
                );
            }
        }
        None
    }

    fn boot_line(&mut self, at: At, line: &BootLine) {
        let index = self.boot_index(line.receipt_key);
        match self.verify_boot(line) {
            Ok(attested) => {
                if let Some(boot) = self.boots.get_mut(index) {
                    boot.documents += 1;
                    boot.attested.get_or_insert(attested);
                }
            }
            Err(error) => self.finding(
                at,
                FindingKind::BadAttestation,
                format!("boot {}: {error}", short(&line.receipt_key)),
            ),
        }
    }

    /// Verifies a boot line's document at its own time (it shows that the enclave was attested
    /// when it held the key), with the line's nonce and receipt key.
    fn verify_boot(&self, line: &BootLine) -> Result<Attested, String> {
        let claimed =
            AttestationDocument::parse_unverified(&line.attestation).map_err(|e| e.to_string())?;
        let made = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_millis(claimed.timestamp_ms))
            .ok_or("the document's timestamp is out of range")?;
        let pcrs = (0u8..).zip(self.pcrs).collect();
        let verifier = Verifier::pinned(
            self.root,
            Expectations {
                pcrs,
                nonce: Some(line.nonce.clone()),
                public_key: Some(receipt_key_spki(&line.receipt_key).to_vec()),
                allow_debug: false,
                max_age: None,
            },
        )
        .map_err(|e| e.to_string())?;
        let verified = verifier
            .verify(&line.attestation, made)
            .map_err(|e| e.to_string())?;
        let document = verified.document();
        if document.user_data.as_deref() != Some(RECEIPT_KEY_USER_DATA) {
            return Err("the document's user_data is not nitro-signer/receipt-key/v1".to_owned());
        }
        Ok(Attested {
            module_id: document.module_id.clone(),
            timestamp_ms: document.timestamp_ms,
            pcrs: self.pcrs,
            simulated: verified.is_simulated(),
        })
    }

    fn receipt_line(&mut self, at: At, line: &ReceiptLine) {
        self.receipt_lines += 1;
        let statement = match Statement::decode(&line.receipt.statement) {
            Ok(statement) => statement,
            Err(error) => {
                return self.finding(at, FindingKind::MalformedLine, error.to_string());
            }
        };
        let key = statement.receipt_key;
        let Some(index) = self.attested_boot(at, key) else {
            return;
        };
        if let Err(error) = line.receipt.verify(&key) {
            return self.finding(
                at,
                FindingKind::BadSignature,
                format!(
                    "sequence {} of boot {}: {error}",
                    statement.sequence,
                    short(&key)
                ),
            );
        }
        if let Some(field) = line.summary.disagreement(&statement) {
            self.finding(
                at,
                FindingKind::SummaryMismatch,
                format!("the line's {field} is not the statement's"),
            );
        }
        let Some(boot) = self.boots.get_mut(index) else {
            return;
        };
        let sequence = statement.sequence;
        boot.receipts += 1;
        boot.first = Some(boot.first.map_or(sequence, |f| f.min(sequence)));
        boot.highest = Some(boot.highest.map_or(sequence, |h| h.max(sequence)));
        let last = boot.last;
        if sequence > last {
            if sequence > last + 1 {
                boot.missing.insert(
                    last + 1,
                    Missing {
                        to: sequence - 1,
                        declared: false,
                        file: at.file,
                        line: at.line,
                    },
                );
            }
            boot.last = sequence;
            return;
        }
        let (kind, detail) = match boot.fill(sequence) {
            Some((from, range)) if range.declared => (
                FindingKind::LateReceipt,
                format!(
                    "sequence {sequence} of boot {} comes after a gap line declared \
                     {from}..={} missing",
                    short(&key),
                    range.to
                ),
            ),
            Some(_) => (
                FindingKind::Reordered,
                format!(
                    "sequence {sequence} of boot {} comes after {last}: out of order",
                    short(&key)
                ),
            ),
            None => (
                FindingKind::Reordered,
                format!(
                    "sequence {sequence} of boot {} comes after {last}: a duplicate or out of order",
                    short(&key)
                ),
            ),
        };
        self.finding(at, kind, detail);
    }

    fn gap_line(&mut self, at: At, line: &GapLine) {
        let GapLine {
            receipt_key,
            from,
            to,
        } = *line;
        if from == 0 || from > to {
            return self.finding(
                at,
                FindingKind::MalformedLine,
                format!("a gap from {from} to {to}"),
            );
        }
        let Some(index) = self.attested_boot(at, receipt_key) else {
            return;
        };
        let Some(boot) = self.boots.get_mut(index) else {
            return;
        };
        let last = boot.last;
        if to <= last {
            return self.finding(
                at,
                FindingKind::Reordered,
                format!(
                    "a gap line declares {from}..={to} of boot {} missing, after {last}",
                    short(&receipt_key)
                ),
            );
        }
        if from > last + 1 {
            boot.missing.insert(
                last + 1,
                Missing {
                    to: from - 1,
                    declared: false,
                    file: at.file,
                    line: at.line,
                },
            );
        }
        let start = from.max(last + 1);
        boot.missing.insert(
            start,
            Missing {
                to,
                declared: true,
                file: at.file,
                line: at.line,
            },
        );
        boot.last = to;
        let (kind, detail) = if from <= last {
            (
                FindingKind::Reordered,
                format!(
                    "a gap line declares {from}..={to} of boot {} missing, after {last}",
                    short(&receipt_key)
                ),
            )
        } else {
            (
                FindingKind::DeclaredGap,
                format!(
                    "the proxy declares that it does not have sequence numbers {from}..={to} of \
                     boot {}",
                    short(&receipt_key)
                ),
            )
        };
        self.finding(at, kind, detail);
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use serde_bytes::{ByteArray, ByteBuf};

    use super::*;
    use crate::{
        UserId,
        audit::line::Summary,
        receipt::{Operation, Receipt, SignedItem},
    };

    /// A boot's receipt key, signing statements as the enclave does.
    struct Enclave {
        key: Ed25519KeyPair,
        public: [u8; 32],
    }

    impl Enclave {
        fn new(seed: u8) -> Self {
            let key = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
            let public = key.public_key().as_ref().try_into().unwrap();
            Self { key, public }
        }

        fn line(&self, sequence: u64) -> String {
            let statement = Statement {
                operation: Operation::SignTransaction,
                receipt_key: self.public,
                sequence,
                time_ms: 1_764_770_000_000 + sequence,
                key_id: [0x22; 32],
                blob_hash: [0x33; 32],
                policy_hash: None,
                user_id: Some(UserId::new("alice").unwrap()),
                address: Some([0x55; 20]),
                approvals_digest: None,
                previous_blob_hash: None,
                request_nonce: None,
                items: vec![SignedItem {
                    index: 0,
                    hash: [0x88; 32],
                    signature: [1; 65],
                }],
            };
            let bytes = statement.encode();
            let signature = self.key.sign(&bytes).as_ref().try_into().unwrap();
            let receipt = Receipt {
                statement: ByteBuf::from(bytes),
                signature: ByteArray::new(signature),
            };
            Line::Receipt(ReceiptLine::new(receipt).unwrap()).encode()
        }

        fn gap(&self, from: u64, to: u64) -> String {
            Line::Gap(GapLine {
                receipt_key: self.public,
                from,
                to,
            })
            .encode()
        }
    }

    /// Checks `lines` with `enclave`'s boot trusted (as a verified boot line would make it).
    fn check(enclave: &Enclave, lines: &[String]) -> Report {
        let mut checker = Checker::new(RootOfTrust::aws_nitro(), [[1; 48], [2; 48], [3; 48]]);
        let index = checker.boot_index(enclave.public);
        checker.boots[index].attested = Some(Attested {
            module_id: "i-0-enc0".to_owned(),
            timestamp_ms: 1,
            pcrs: [[1; 48], [2; 48], [3; 48]],
            simulated: false,
        });
        for (n, line) in lines.iter().enumerate() {
            checker.check_line(0, n as u64 + 1, line.as_bytes());
        }
        checker.finish()
    }

    fn kinds(report: &Report) -> Vec<(u64, FindingKind)> {
        report.findings.iter().map(|f| (f.line, f.kind)).collect()
    }

    fn sequence(enclave: &Enclave, range: std::ops::RangeInclusive<u64>) -> Vec<String> {
        range.map(|n| enclave.line(n)).collect()
    }

    #[test]
    fn a_complete_log_passes() {
        let enclave = Enclave::new(1);
        let report = check(&enclave, &sequence(&enclave, 1..=5));
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert!(report.passed(false));
        let boot = &report.boots[0];
        assert_eq!(
            (boot.first_sequence, boot.last_sequence, boot.receipts),
            (Some(1), Some(5), 5)
        );
        assert_eq!((report.lines, report.receipt_lines), (5, 5));
    }

    #[test]
    fn a_removed_line_is_an_undeclared_gap() {
        let enclave = Enclave::new(1);
        let mut lines = sequence(&enclave, 1..=5);
        lines.remove(2);
        let report = check(&enclave, &lines);
        assert_eq!(kinds(&report), [(3, FindingKind::UndeclaredGap)]);
        assert_eq!(report.boots[0].missing_undeclared, 1);
        assert!(!report.passed(true));
        // Without the first line, sequence 1 is missing (the last line's removal cannot be
        // seen: nothing follows it).
        let report = check(&enclave, &sequence(&enclave, 2..=5));
        assert_eq!(kinds(&report), [(1, FindingKind::UndeclaredGap)]);
    }

    #[test]
    fn a_swap_is_one_reordering() {
        let enclave = Enclave::new(1);
        let mut lines = sequence(&enclave, 1..=5);
        lines.swap(1, 2);
        let report = check(&enclave, &lines);
        assert_eq!(kinds(&report), [(3, FindingKind::Reordered)]);
        assert_eq!(report.boots[0].missing_undeclared, 0);
        let mut lines = sequence(&enclave, 1..=3);
        lines.push(lines[1].clone());
        assert_eq!(
            kinds(&check(&enclave, &lines)),
            [(4, FindingKind::Reordered)]
        );
    }

    #[test]
    fn forged_and_altered_receipts_are_bad_signatures() {
        let enclave = Enclave::new(1);
        let mut lines = sequence(&enclave, 1..=3);
        // The statement's time changed by one: the summary agrees, the signature does not.
        lines[1] = lines[1].replace(
            &format!("{:x}", 1_764_770_000_002u64),
            &format!("{:x}", 1_764_770_000_003u64),
        );
        lines[1] = lines[1].replace(r#""time":1764770000002"#, r#""time":1764770000003"#);
        let report = check(&enclave, &lines);
        assert_eq!(
            kinds(&report),
            [
                (2, FindingKind::BadSignature),
                (3, FindingKind::UndeclaredGap)
            ]
        );

        // Signed by another key, over a statement naming the attested key.
        let forger = Enclave::new(2);
        let forged = Line::parse(enclave.line(2).as_bytes()).unwrap();
        let Line::Receipt(mut forged) = forged else {
            panic!()
        };
        let signature = forger.key.sign(&forged.receipt.statement);
        forged.receipt.signature = ByteArray::new(signature.as_ref().try_into().unwrap());
        let lines = [
            enclave.line(1),
            Line::Receipt(forged).encode(),
            enclave.line(3),
        ];
        let report = check(&enclave, &lines);
        assert_eq!(report.findings[0].kind, FindingKind::BadSignature);

        // A whole boot the checker does not trust.
        let report = check(&enclave, &sequence(&forger, 1..=3));
        assert_eq!(kinds(&report), [(1, FindingKind::UnknownBoot)]);
        assert!(
            report.findings[0]
                .detail
                .ends_with("(2 more lines of this key follow)")
        );
        assert!(!report.boots[1].verified);
    }

    #[test]
    fn a_summary_must_say_what_the_statement_says() {
        let enclave = Enclave::new(1);
        let mut lines = sequence(&enclave, 1..=2);
        lines[1] = lines[1].replace(r#""userId":"alice""#, r#""userId":"mallory""#);
        let report = check(&enclave, &lines);
        assert_eq!(kinds(&report), [(2, FindingKind::SummaryMismatch)]);
        assert!(report.findings[0].detail.contains("userId"));
        let line = Line::parse(lines[1].as_bytes()).unwrap();
        let Line::Receipt(line) = line else { panic!() };
        let statement = line.receipt.statement_unverified().unwrap();
        assert_eq!(line.summary.disagreement(&statement), Some("userId"));
        assert_eq!(Summary::of(&statement).disagreement(&statement), None);
    }

    #[test]
    fn declared_gaps_and_late_receipts() {
        let enclave = Enclave::new(1);
        let lines = [
            enclave.line(1),
            enclave.gap(2, 3),
            enclave.line(4),
            enclave.line(3),
            enclave.line(5),
        ];
        let report = check(&enclave, &lines);
        assert_eq!(
            kinds(&report),
            [(2, FindingKind::DeclaredGap), (4, FindingKind::LateReceipt)]
        );
        assert_eq!(report.boots[0].missing_declared, 1);
        assert!(!report.passed(false));
        assert!(report.passed(true));
        // A gap line that overlaps receipts already in the log, and one that is nonsense.
        let lines = [
            enclave.line(1),
            enclave.line(2),
            enclave.gap(2, 3),
            enclave.gap(5, 4),
        ];
        let report = check(&enclave, &lines);
        assert_eq!(
            kinds(&report),
            [(3, FindingKind::Reordered), (4, FindingKind::MalformedLine)]
        );
        // A boot first seen in the middle: the proxy declares what came before.
        let lines = [enclave.gap(1, 9), enclave.line(10)];
        let report = check(&enclave, &lines);
        assert_eq!(kinds(&report), [(1, FindingKind::DeclaredGap)]);
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let enclave = Enclave::new(1);
        let lines = [
            enclave.line(1),
            "not json".to_owned(),
            enclave
                .line(2)
                .replace(r#""statement":"0x"#, r#""statement":"0x00"#),
            enclave.line(2),
        ];
        let report = check(&enclave, &lines);
        assert_eq!(
            kinds(&report),
            [
                (2, FindingKind::MalformedLine),
                (3, FindingKind::MalformedLine)
            ]
        );
    }

    #[test]
    fn boot_lines_must_verify() {
        let mut checker = Checker::new(RootOfTrust::aws_nitro(), [[1; 48], [2; 48], [3; 48]]);
        let boot = Line::Boot(BootLine {
            receipt_key: [7; 32],
            nonce: vec![1; 32],
            attestation: vec![0x84, 0x40, 0xa0, 0x40, 0x40],
        });
        checker.check_line(0, 1, boot.encode().as_bytes());
        let report = checker.finish();
        assert_eq!(report.findings[0].kind, FindingKind::BadAttestation);
        assert!(!report.boots[0].verified);
    }
}
