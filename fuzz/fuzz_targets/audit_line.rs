//! Audit log lines from arbitrary bytes: never panic; whatever parses re-encodes to a line that
//! parses to the same value, and encodes the same again. The checker takes every line of the
//! input, in order, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_common::{
    attestation::RootOfTrust,
    audit::{Checker, Line},
};

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = Line::parse(data) {
        let text = line.encode();
        let again = Line::parse(text.as_bytes()).expect("an encoded line parses");
        assert_eq!(again, line);
        assert_eq!(again.encode(), text);
    }
    let mut checker = Checker::new(RootOfTrust::aws_nitro(), [[1; 48], [2; 48], [3; 48]]);
    for (number, line) in data.split(|b| *b == b'\n').enumerate() {
        checker.check_line(0, number as u64 + 1, line);
    }
    let report = checker.finish();
    assert!(report.findings.windows(2).all(|w| w[0].line <= w[1].line));
});
