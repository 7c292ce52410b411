//! Key sets: `token::keys::KeySet::parse` on arbitrary JSON never panics; every usable key it
//! keeps can be found by its `kid`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::token::keys::KeySet;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let (set, skipped) = KeySet::parse(&doc);
    let listed = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .map_or(0, Vec::len);
    assert!(
        set.len() <= listed,
        "{} keys from {listed} entries",
        set.len()
    );
    assert_eq!(set.is_empty(), set.len() == 0);
    let _ = skipped;
    if let Some(keys) = doc.get("keys").and_then(|k| k.as_array()) {
        for key in keys {
            if let Some(kid) = key.get("kid").and_then(|k| k.as_str())
                && let Some(found) = set.get(kid)
            {
                assert_eq!(found.kid.as_deref(), Some(kid));
            }
        }
    }
});
