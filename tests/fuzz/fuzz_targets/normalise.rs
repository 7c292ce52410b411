//! Path normalisation: `routing::normalise` on arbitrary paths never panics, and what it accepts
//! is normal: an absolute path without `//`, `/./`, `/../` (nor ending in `/.` or `/..`), without
//! bytes or escapes that servers read differently, and normalising it again changes nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::routing::normalise;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(once) = normalise(raw) else {
        return;
    };
    let path = once.path.as_ref();
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}: not absolute");
    for bad in ["//", "/./", "/../"] {
        assert!(!path.contains(bad), "{raw:?} -> {path:?}: contains {bad}");
    }
    for bad in ["/.", "/.."] {
        assert!(!path.ends_with(bad), "{raw:?} -> {path:?}: ends with {bad}");
    }
    assert!(
        path.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'#'),
        "{raw:?} -> {path:?}: a forbidden byte"
    );
    let upper = path.to_ascii_uppercase();
    for escape in ["%2F", "%5C", "%2E", "%00"] {
        assert!(
            !upper.contains(escape),
            "{raw:?} -> {path:?}: {escape} left in"
        );
    }
    match normalise(path) {
        Ok(twice) => {
            assert_eq!(twice.path.as_ref(), path, "{raw:?}: not idempotent");
            // Parameters can vanish with their segment (`/a;b/../c`), never appear.
            assert!(
                !twice.has_params || once.has_params,
                "{raw:?}: parameters appeared"
            );
        }
        Err(e) => panic!("{raw:?} -> {path:?}, which is then refused: {e}"),
    }
});
