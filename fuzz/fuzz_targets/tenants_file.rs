//! The proxy's tenants file from arbitrary bytes: never panic; whatever parses writes back to a
//! file that parses to the same tenants, and every tenant's digest stays its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_common::tenants::Tenants;

fuzz_target!(|data: &[u8]| {
    let Ok(tenants) = Tenants::parse(data) else {
        return;
    };
    let again = Tenants::parse(tenants.to_json().as_bytes()).expect("a written file parses");
    assert_eq!(again, tenants);
    for tenant in tenants.iter() {
        assert!(!tenant.owners().is_empty());
        assert!(tenant.may_use(tenant.default_owner()));
    }
    // Looking a key up never panics, whatever the key (here the input itself).
    let _ = tenants.authenticate(data);
});
