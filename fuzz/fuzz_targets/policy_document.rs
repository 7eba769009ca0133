//! Policy documents from arbitrary bytes: never panic; whatever parses has a canonical form that
//! parses back to the same policy, and evaluating it on every kind of request never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_policy::{Decision, Facts, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(policy) = Policy::from_json(data) else {
        return;
    };
    let again = Policy::from_canonical(policy.canonical()).expect("a canonical form parses");
    assert_eq!(again, policy);
    for facts in [
        Facts::message(Some("alice")),
        Facts::digest(None),
    ] {
        for now in [0, 1_800_000_000, u64::MAX] {
            if let Decision::Allowed(candidates) = policy.evaluate(&facts, now) {
                let _ = candidates.check(&Default::default());
                let names = policy.approvers().keys().map(String::as_str).collect();
                let _ = candidates.check(&names);
            }
        }
    }
});
