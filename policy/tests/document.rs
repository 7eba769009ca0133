#![cfg(test)]
//! The policy document: strict parsing with errors that name the path, the canonical form and
//! the hash.

use nitro_signer_policy::{Policy, PolicyError};
use serde_json::{Value, json};

const ED25519: &str = "0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
/// The P-256 generator point, compressed: a valid SEC1 key.
const P256: &str = "0x036b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296";

/// The example of `docs/policy.md`.
fn example() -> Value {
    json!({
        "version": 1,
        "approvers": {
            "ops-1": {"type": "ed25519", "publicKey": ED25519},
            "risk": {"type": "p256", "publicKey": P256}
        },
        "rules": [
            {"effect": "deny", "when": {"kinds": ["digest"]}},
            {"effect": "allow",
             "when": {"kinds": ["transaction"], "chainIds": ["0x1"],
                      "to": ["0x1111111111111111111111111111111111111111"], "valueMax": "0xde0b6b3a7640000"},
             "approvals": {"threshold": 1, "from": ["ops-1", "risk"]}},
            {"effect": "allow", "when": {"kinds": ["transaction"], "chainIds": ["0x1"]},
             "approvals": {"threshold": 2, "from": ["ops-1", "risk"]}}
        ],
        "admins": {"threshold": 2, "from": ["ops-1", "risk"]}
    })
}

fn parse(document: &Value) -> Result<Policy, PolicyError> {
    Policy::from_json(document.to_string().as_bytes())
}

fn error_at(document: Value) -> String {
    parse(&document).unwrap_err().path
}

#[test]
fn the_documented_example_parses() {
    let policy = parse(&example()).unwrap();
    assert_eq!(policy.rules().len(), 3);
    assert_eq!(policy.approvers().len(), 2);
    assert_eq!(policy.admins().unwrap().threshold, 2);
}

#[test]
fn the_canonical_form_and_hash_match_an_independent_implementation() {
    // Python's json with sorted keys and no whitespace is RFC 8785 for documents like these
    // (ASCII strings, small integers); hashlib gives the hash.
    let document = example();
    let script = "import hashlib, json, sys\n\
        doc = json.loads(sys.stdin.read())\n\
        canonical = json.dumps(doc, sort_keys=True, separators=(',', ':'), ensure_ascii=False)\n\
        print(hashlib.sha256(canonical.encode()).hexdigest())\n\
        print(canonical)";
    // Formatted with whitespace and keys out of order, as a person writes it.
    let pretty = serde_json::to_string_pretty(&document).unwrap();
    let output = nitro_signer_tests::python::run(&["-c", script], pretty.as_bytes());
    let stdout = String::from_utf8(output).unwrap();
    let mut lines = stdout.lines();
    let (hash, canonical) = (lines.next().unwrap(), lines.next().unwrap());
    let policy = Policy::from_json(pretty.as_bytes()).unwrap();
    assert_eq!(policy.hash_hex(), hash);
    // docs/policy.md gives the example's hash.
    let docs = include_str!("../../docs/policy.md");
    assert!(
        docs.contains(&format!("`policyHash` is `0x{hash}`")),
        "docs/policy.md lacks the example's hash 0x{hash}"
    );
    assert_eq!(policy.canonical(), canonical.as_bytes());
    // The canonical form reads back as itself; any other form is refused where a blob keeps it.
    assert_eq!(
        Policy::from_canonical(policy.canonical()).unwrap().hash(),
        policy.hash()
    );
    assert!(Policy::from_canonical(pretty.as_bytes()).is_err());
}

#[test]
fn errors_name_the_path() {
    let mut d = example();
    d["rules"][1]["when"]["to"][0] = json!("0x11");
    assert_eq!(error_at(d), "rules[1].when.to[0]");
    let mut d = example();
    d["rules"][0]["when"]["kindz"] = json!(["digest"]);
    assert_eq!(error_at(d), "rules[0].when.kindz");
    let mut d = example();
    d["rules"][2]["approvals"]["from"][1] = json!("nobody");
    assert_eq!(error_at(d), "rules[2].approvals.from[1]");
    let mut d = example();
    d["rules"][2]["approvals"]["threshold"] = json!(3);
    assert_eq!(error_at(d), "rules[2].approvals.threshold");
    let mut d = example();
    d["rules"][2]["approvals"]["threshold"] = json!(0);
    assert_eq!(error_at(d), "rules[2].approvals.threshold");
    let mut d = example();
    d["approvers"]["risk"]["publicKey"] = json!("0x04");
    assert_eq!(error_at(d), "approvers.risk.publicKey");
    let mut d = example();
    d["approvers"]["bad name!"] = json!({"type": "ed25519", "publicKey": ED25519});
    assert_eq!(error_at(d), "approvers.bad name!");
    let mut d = example();
    d["version"] = json!(2);
    assert_eq!(error_at(d), "version");
    let mut d = example();
    d["admins"]["from"] = json!([]);
    assert_eq!(error_at(d), "admins.from");
    let mut d = example();
    d["rules"][1]["when"]["chainIds"] = json!(["0x1", "0x1"]);
    assert_eq!(error_at(d), "rules[1].when.chainIds");
    let mut d = example();
    d["rules"][1]["when"]["valueMax"] = json!(1000);
    assert_eq!(error_at(d), "rules[1].when.valueMax");
    let mut d = example();
    d["rules"][1]["when"]["valueMax"] = json!("0x01");
    assert_eq!(error_at(d), "rules[1].when.valueMax");
    let mut d = example();
    d["rules"][0]["approvals"] = json!({"threshold": 1, "from": ["ops-1"]});
    assert_eq!(error_at(d), "rules[0].approvals");
    let mut d = example();
    d["rules"][1]["when"]["erc20"] = json!({"tokens": [ED25519[..42].to_owned()]});
    assert_eq!(error_at(d), "rules[1].when.erc20");
    let mut d = example();
    d["rules"][1]["when"]["selectors"] = json!([{"selector": "0xa9059c"}]);
    assert_eq!(error_at(d), "rules[1].when.selectors[0].selector");
    let mut d = example();
    d["notAfter"] = json!(1u64 << 53);
    assert_eq!(error_at(d), "notAfter");
    let mut d = example();
    d["notAfter"] = json!(1.5);
    assert_eq!(error_at(d), "notAfter");
    let mut d = example();
    d["extra"] = json!(true);
    assert_eq!(error_at(d), "extra");
    // A policy that allows nothing is a mistake.
    assert_eq!(
        error_at(json!({"version": 1, "rules": [{"effect": "deny", "when": {}}]})),
        "rules"
    );
}

#[test]
fn repeated_keys_are_refused() {
    let text = format!(
        r#"{{"version":1,"approvers":{{"a":{{"type":"ed25519","publicKey":"{ED25519}"}},"a":{{"type":"ed25519","publicKey":"{ED25519}"}}}},"rules":[{{"effect":"allow","when":{{}}}}]}}"#
    );
    let error = Policy::from_json(text.as_bytes()).unwrap_err();
    assert!(error.to_string().contains("approvers"), "{error}");
    let text = r#"{"version":1,"rules":[{"effect":"allow","when":{"to":["0x1111111111111111111111111111111111111111"],"to":[]}}]}"#;
    assert!(Policy::from_json(text.as_bytes()).is_err());
}

#[test]
fn size_limits() {
    let many: Vec<String> = (0..257).map(|i| format!("0x{i:x}")).collect();
    let mut d = example();
    d["rules"][1]["when"]["chainIds"] = json!(many);
    assert_eq!(error_at(d), "rules[1].when.chainIds");
    let rules: Vec<Value> = (0..65)
        .map(|_| json!({"effect": "allow", "when": {}}))
        .collect();
    assert_eq!(error_at(json!({"version": 1, "rules": rules})), "rules");
    let big = "x".repeat(70_000);
    assert_eq!(
        error_at(json!({"version": 1, "rules": [{"effect": "allow", "when": {"users": [big]}}]})),
        "."
    );
}

/// `docs/policy.schema.json` and the parser agree: documents the parser accepts are valid
/// under the schema (checked by Python `jsonschema`), and documents of the wrong shape are
/// refused by both.
#[test]
fn the_json_schema_agrees_with_the_parser() {
    let mut relaxed = example();
    relaxed["notAfter"] = json!(1_800_000_000);
    relaxed["settings"] = json!({"preEip155": true});
    relaxed["rules"][1]["when"]["selectors"] = json!([{"selector": "0xa9059cbb", "contracts": ["0x1111111111111111111111111111111111111111"]}]);
    relaxed["rules"][1]["when"]["erc20"] = json!({
        "tokens": ["0x2222222222222222222222222222222222222222"],
        "transfer": {"recipients": ["0x1111111111111111111111111111111111111111"], "amountMax": "0x5"},
        "approve": {"amountMax": "0x0"}
    });
    relaxed["rules"][2]["when"]["typedData"] =
        json!({"primaryTypes": ["Mail"], "chainIds": ["0x1"]});
    relaxed["rules"][2]["when"]["delegates"] =
        json!(["0x1111111111111111111111111111111111111111"]);
    let mut flow = example();
    flow["rules"][1]["when"] = json!({"kinds": ["flowTransaction"], "flow": {
        "payers": ["0xf8d6e0586b0a20c7"],
        "authorizers": ["0xf8d6e0586b0a20c7", "0x01CF0E2F2F715450"],
        "scripts": ["0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
        "roles": ["proposer", "authorizer", "payer"]
    }});
    flow["rules"][0]["when"] = json!({"flow": {"roles": ["proposer"]}});
    let valid = [example(), relaxed, flow];
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut d = example();
        f(&mut d);
        d
    };
    let invalid = [
        mutate(&|d| d["version"] = json!(2)),
        mutate(&|d| d["extra"] = json!(1)),
        mutate(&|d| d["rules"][1]["when"]["to"][0] = json!("0x11")),
        mutate(&|d| d["rules"][1]["when"]["valueMax"] = json!("0x01")),
        mutate(&|d| d["rules"][1]["when"]["valueMax"] = json!(5)),
        mutate(&|d| d["rules"][0]["approvals"] = json!({"threshold": 1, "from": ["ops-1"]})),
        mutate(&|d| d["rules"][0]["effect"] = json!("maybe")),
        mutate(&|d| d["rules"][1]["when"]["kinds"] = json!([])),
        mutate(&|d| d["rules"][1]["when"]["kinds"] = json!(["tx"])),
        mutate(&|d| {
            d["rules"][1]["when"]["erc20"] =
                json!({"tokens": ["0x1111111111111111111111111111111111111111"]})
        }),
        mutate(&|d| d["rules"][1]["when"]["selectors"] = json!([{"selector": "0xa9059c"}])),
        mutate(&|d| d["approvers"]["ops-1"]["type"] = json!("rsa")),
        mutate(&|d| d["approvers"]["ops-1"]["publicKey"] = json!("0x1234")),
        mutate(&|d| d["admins"]["threshold"] = json!(0)),
        mutate(&|d| d["rules"] = json!([])),
        mutate(&|d| d["rules"][1]["when"]["flow"] = json!({})),
        mutate(&|d| d["rules"][1]["when"]["flow"] = json!({"payer": ["0xf8d6e0586b0a20c7"]})),
        mutate(&|d| d["rules"][1]["when"]["flow"] = json!({"payers": []})),
        mutate(&|d| d["rules"][1]["when"]["flow"] = json!({"payers": ["f8d6e0586b0a20c7"]})),
        mutate(&|d| d["rules"][1]["when"]["flow"] = json!({"payers": ["0x0000000000000000"]})),
        mutate(&|d| {
            d["rules"][1]["when"]["flow"] =
                json!({"authorizers": ["0x1111111111111111111111111111111111111111"]})
        }),
        mutate(&|d| d["rules"][1]["when"]["flow"] = json!({"scripts": ["0xba7816bf"]})),
        mutate(&|d| d["rules"][1]["when"]["flow"] = json!({"roles": ["signer"]})),
        mutate(&|d| d["rules"][1]["when"]["kinds"] = json!(["flow"])),
    ];
    for document in &valid {
        parse(document).unwrap();
    }
    for document in &invalid {
        assert!(parse(document).is_err(), "the parser accepts {document}");
    }
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        jsonschema.Draft202012Validator.check_schema(schema)\n\
        validator = jsonschema.Draft202012Validator(schema)\n\
        print(json.dumps([validator.is_valid(d) for d in json.load(sys.stdin)]))";
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/policy.schema.json");
    let documents: Vec<&Value> = valid.iter().chain(&invalid).collect();
    let output = nitro_signer_tests::python::run(
        &["-c", script, schema],
        serde_json::to_string(&documents).unwrap().as_bytes(),
    );
    let verdicts: Vec<bool> = serde_json::from_slice(&output).unwrap();
    let expected: Vec<bool> = valid
        .iter()
        .map(|_| true)
        .chain(invalid.iter().map(|_| false))
        .collect();
    assert_eq!(verdicts, expected, "{documents:#?}");
}
