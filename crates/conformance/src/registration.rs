//! The suites' test lists are checked, not trusted: a test is an `async fn`
//! whose only parameter is the store under test, and the backend runs only
//! what `catalog_conformance!` / `blob_conformance!` name. A test written
//! but not named there would never run, on any backend, and nothing would
//! say so. These tests read the suites' source and require every test to be
//! named exactly once.

use std::collections::BTreeMap;

/// The source as identifiers and single punctuation characters, so the
/// checks below do not depend on how rustfmt wraps a signature or a list.
fn tokens(src: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, ch) in src.char_indices() {
        let word = ch.is_alphanumeric() || ch == '_';
        match (word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(&src[s..i]);
                start = None;
            }
            _ => {}
        }
        if !word && !ch.is_whitespace() {
            out.push(&src[i..i + ch.len_utf8()]);
        }
    }
    if let Some(s) = start {
        out.push(&src[s..]);
    }
    out
}

/// Every `async fn NAME(x: Arc<dyn TRAIT>)`: the suite's tests (helpers
/// take `&dyn TRAIT` or more parameters).
fn tests_of<'a>(t: &[&'a str], store_trait: &str) -> Vec<&'a str> {
    let shape = ["(", "", ":", "Arc", "<", "dyn", store_trait, ">"];
    let mut found = Vec::new();
    for i in 0..t.len() {
        if t[i] != "async" || t.get(i + 1) != Some(&"fn") {
            continue;
        }
        let Some(args) = t.get(i + 3..i + 3 + shape.len()) else {
            continue;
        };
        let fits = args.iter().zip(shape).all(|(a, s)| s.is_empty() || *a == s);
        let mut end = i + 3 + shape.len();
        if t.get(end) == Some(&",") {
            end += 1;
        }
        if fits && t.get(end) == Some(&")") {
            found.push(t[i + 2]);
        }
    }
    found
}

/// Every name in the macro's `@tests $make; a, b, c` lists, with how
/// often it is named.
fn registered<'a>(t: &[&'a str]) -> BTreeMap<&'a str, usize> {
    let mut named = BTreeMap::new();
    for i in 0..t.len() {
        if t.get(i..i + 5) != Some(&["@", "tests", "$", "make", ";"]) {
            continue;
        }
        for &name in t[i + 5..].iter().take_while(|&&x| x != ")") {
            if name != "," {
                *named.entry(name).or_insert(0) += 1;
            }
        }
    }
    named
}

fn check(src: &str, store_trait: &str, known: &str) {
    let t = tokens(src);
    let tests = tests_of(&t, store_trait);
    let named = registered(&t);
    // The parsers found the suite at all (else both sides could be empty).
    assert!(tests.contains(&known), "{known} not found as a test");
    assert!(named.contains_key(known), "{known} not found in the macro");
    let unregistered: Vec<_> = tests.iter().filter(|n| !named.contains_key(*n)).collect();
    assert!(
        unregistered.is_empty(),
        "tests never run: add them to the macro: {unregistered:?}"
    );
    let twice: Vec<_> = named.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "named more than once: {twice:?}");
    // A name that is not a test fails to compile in the macro's user, or
    // is a test with the wrong shape: say so here too.
    let stray: Vec<_> = named.keys().filter(|n| !tests.contains(n)).collect();
    assert!(stray.is_empty(), "named but not a test: {stray:?}");
}

#[test]
fn every_catalog_test_is_registered_once() {
    check(
        include_str!("catalog.rs"),
        "Catalog",
        "orgs_are_created_once",
    );
}

#[test]
fn every_blob_test_is_registered_once() {
    check(include_str!("blobs.rs"), "BlobStore", "put_get_round_trip");
}

#[test]
fn a_forgotten_test_is_caught() {
    let src = "macro_rules! m { ($make:expr) => { m!(@tests $make; a, b); }; }
        pub async fn a(c: Arc<dyn Catalog>) {}
        pub async fn b(
            c: Arc<dyn Catalog>,
        ) {}
        pub async fn forgotten(catalog: Arc<dyn Catalog>) {}
        pub async fn helper(c: &dyn Catalog) {}";
    let t = tokens(src);
    assert_eq!(tests_of(&t, "Catalog"), ["a", "b", "forgotten"]);
    assert_eq!(registered(&t).into_keys().collect::<Vec<_>>(), ["a", "b"]);
    assert!(std::panic::catch_unwind(|| check(src, "Catalog", "a")).is_err());
}
