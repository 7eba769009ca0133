//! `nitro-signer audit check`: what an audit log (the proxy's `--audit-log`) proves.
//!
//! The files are read line by line, in the order given, into
//! [`nitro_signer_common::audit::Checker`], which verifies each boot's attestation document
//! (root, PCR0, PCR1, PCR2, the nonce, the receipt key it binds), every receipt's signature and
//! summary, and each boot's sequence numbers. The report goes to standard output; the command
//! fails unless there are no findings (gap lines the proxy wrote count as findings too, unless
//! `--allow-declared-gaps`).

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use nitro_signer_common::audit::{self, Checker, MAX_LINE_LEN, Report};
use serde_json::json;

use crate::client::print;

/// `nitro-signer audit …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Check audit log files: every boot's attestation document (root, PCR0, PCR1 and PCR2),
    /// every receipt's signature and summary, and each boot's sequence numbers. Prints what the
    /// log covers and every finding; fails unless there is none.
    Check(CheckArgs),
}

/// Options of `audit check`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CheckArgs {
    /// The image every boot's attestation must show (PCR0, PCR1, PCR2) and the root it chains
    /// to.
    #[command(flatten)]
    trust: crate::verify::TrustArgs,

    /// Pass even when the proxy declared gaps (receipts it says it never had, or had too
    /// late); they are still reported.
    #[arg(long)]
    allow_declared_gaps: bool,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,

    /// The log's files, oldest first: rotated files (`PATH.YYYYMMDDTHHMMSSZ`, whose names sort
    /// in time order) and then the current one, e.g. `$(ls audit.jsonl.*) audit.jsonl`.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// `audit …`.
pub(crate) fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Check(args) => check(&args),
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let (root, pcrs) = args.trust.root_and_pcrs()?;
    let mut checker = Checker::new(root, pcrs);
    for (index, path) in args.files.iter().enumerate() {
        check_file(&mut checker, index, path)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    let report = checker.finish();
    let passed = report.passed(args.allow_declared_gaps);
    if args.json {
        print(&json_report(&report, &args.files, passed))?;
    } else {
        print_report(&report, &args.files, passed);
    }
    if !passed {
        bail!(
            "the audit log did not pass: {} finding(s)",
            report.findings.len()
        );
    }
    Ok(())
}

/// Feeds every line of `path` to `checker`. A line longer than [`MAX_LINE_LEN`] is fed cut
/// (the checker reports it) and the rest of it skipped.
fn check_file(checker: &mut Checker, index: usize, path: &Path) -> anyhow::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let limit = MAX_LINE_LEN as u64 + 1;
        if (&mut reader).take(limit).read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > MAX_LINE_LEN {
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let n = (&mut reader).take(1 << 16).read_until(b'\n', &mut rest)?;
                if n == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
        }
        checker.check_line(index, number, &line);
    }
}

fn file_name(files: &[PathBuf], index: usize) -> String {
    files
        .get(index)
        .map_or_else(|| format!("file {index}"), |p| p.display().to_string())
}

fn print_report(report: &Report, files: &[PathBuf], passed: bool) {
    println!(
        "{} file(s), {} line(s), {} receipt line(s), {} boot(s)",
        files.len(),
        report.lines,
        report.receipt_lines,
        report.boots.len()
    );
    for boot in &report.boots {
        println!("boot {}", audit::hex(&boot.receipt_key));
        if !boot.verified {
            println!("  not verified: no boot line of this key verified");
            continue;
        }
        let root = if boot.simulated {
            "simulator's root (proves nothing about hardware)"
        } else {
            "AWS Nitro root"
        };
        println!("  attested:  {root}, {} document(s)", boot.documents);
        if let Some(module) = &boot.module_id {
            println!("  module:    {module}");
        }
        if let Some(at) = boot.attested_at_ms {
            println!("  first document at {}", audit::utc_rfc3339(at));
        }
        if let Some(pcrs) = &boot.pcrs {
            for (index, value) in pcrs.iter().enumerate() {
                println!("  PCR{index}:      {}", audit::hex(value));
            }
        }
        match (boot.first_sequence, boot.last_sequence) {
            (Some(first), Some(last)) => println!(
                "  receipts:  {} verified, sequence {first}..={last}",
                boot.receipts
            ),
            _ => println!("  receipts:  none"),
        }
        if boot.missing_declared + boot.missing_undeclared > 0 {
            println!(
                "  missing:   {} undeclared, {} declared by the proxy",
                boot.missing_undeclared, boot.missing_declared
            );
        }
    }
    if report.findings.is_empty() {
        println!("findings: none");
    } else {
        println!("findings: {}", report.findings.len());
        for finding in &report.findings {
            println!(
                "  {}:{}: {}: {}",
                file_name(files, finding.file),
                finding.line,
                finding.kind,
                finding.detail
            );
        }
    }
    println!("result: {}", if passed { "passed" } else { "FAILED" });
}

fn json_report(report: &Report, files: &[PathBuf], passed: bool) -> serde_json::Value {
    let boots: Vec<_> = report
        .boots
        .iter()
        .map(|boot| {
            json!({
                "receiptKey": audit::hex(&boot.receipt_key),
                "verified": boot.verified,
                "simulated": boot.simulated,
                "moduleId": boot.module_id,
                "attestedAt": boot.attested_at_ms,
                "documents": boot.documents,
                "pcrs": boot.pcrs.map(|pcrs| pcrs.map(|p| audit::hex(&p))),
                "firstSequence": boot.first_sequence,
                "lastSequence": boot.last_sequence,
                "receipts": boot.receipts,
                "missingDeclared": boot.missing_declared,
                "missingUndeclared": boot.missing_undeclared,
            })
        })
        .collect();
    let findings: Vec<_> = report
        .findings
        .iter()
        .map(|finding| {
            json!({
                "file": file_name(files, finding.file),
                "line": finding.line,
                "kind": finding.kind.as_str(),
                "detail": finding.detail,
            })
        })
        .collect();
    json!({
        "passed": passed,
        "files": files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "lines": report.lines,
        "receiptLines": report.receipt_lines,
        "boots": boots,
        "findings": findings,
    })
}
