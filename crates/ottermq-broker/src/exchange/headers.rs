//! Headers exchange matching, with RabbitMQ's rules: `x-match` is `all` (the default), `any`,
//! `all-with-x` or `any-with-x`; the plain kinds ignore binding keys that start with `x-`; a
//! binding value of type void only asks for the header to be present; values compare equal when
//! their type class (integer, float, or the exact type otherwise) and value are equal.

use ottermq_protocol::{FieldTable, FieldValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchKind {
    All,
    Any,
}

/// Whether a headers binding with `args` takes a message with `headers`.
pub fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let (kind, with_x) = match args.get("x-match").and_then(|v| v.as_str_bytes()) {
        Some(b"any") => (MatchKind::Any, false),
        Some(b"any-with-x") => (MatchKind::Any, true),
        Some(b"all-with-x") => (MatchKind::All, true),
        _ => (MatchKind::All, false),
    };
    let mut any = false;
    for (key, want) in args.iter() {
        let k = key.as_bytes();
        if k == b"x-match" || (!with_x && k.starts_with(b"x-")) {
            continue;
        }
        let found =
            headers.and_then(|h| h.iter().find(|(hk, _)| hk.as_bytes() == k).map(|(_, v)| v));
        let ok = match found {
            None => false,
            Some(_) if matches!(want, FieldValue::Void) => true,
            Some(have) => values_equal(want, have),
        };
        match (kind, ok) {
            (MatchKind::All, false) => return false,
            (MatchKind::Any, true) => any = true,
            _ => {}
        }
    }
    match kind {
        MatchKind::All => true,
        MatchKind::Any => any,
    }
}

/// Validates binding arguments the way RabbitMQ does at bind time.
pub fn validate_binding_args(args: &FieldTable) -> Result<(), String> {
    match args.get("x-match") {
        None => Ok(()),
        Some(v) => match v.as_str_bytes() {
            Some(b"all" | b"any" | b"all-with-x" | b"any-with-x") => Ok(()),
            _ => Err(format!(
                "Invalid x-match field value {v:?}; expected all, any, all-with-x, or any-with-x"
            )),
        },
    }
}

#[derive(PartialEq)]
enum Class<'a> {
    Int(i128),
    Float(f64),
    Other(&'a FieldValue),
}

fn class(v: &FieldValue) -> Class<'_> {
    match v {
        FieldValue::I8(x) => Class::Int(*x as i128),
        FieldValue::U8(x) => Class::Int(*x as i128),
        FieldValue::I16(x) => Class::Int(*x as i128),
        FieldValue::U16(x) => Class::Int(*x as i128),
        FieldValue::I32(x) => Class::Int(*x as i128),
        FieldValue::U32(x) => Class::Int(*x as i128),
        FieldValue::I64(x) => Class::Int(*x as i128),
        FieldValue::U64(x) => Class::Int(*x as i128),
        FieldValue::F32(x) => Class::Float(*x as f64),
        FieldValue::F64(x) => Class::Float(*x),
        other => Class::Other(other),
    }
}

fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    match (class(a), class(b)) {
        (Class::Int(x), Class::Int(y)) => x == y,
        (Class::Float(x), Class::Float(y)) => x == y,
        (Class::Other(x), Class::Other(y)) => match (x, y) {
            // Short and long strings are one type on the wire RabbitMQ sees (longstr).
            (
                FieldValue::LongStr(_) | FieldValue::ShortStr(_),
                FieldValue::LongStr(_) | FieldValue::ShortStr(_),
            ) => x.as_str_bytes() == y.as_str_bytes(),
            _ => x == y,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ottermq_protocol::LongStr;

    fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        t
    }
    fn s(v: &str) -> FieldValue {
        FieldValue::LongStr(LongStr::from(v))
    }

    #[test]
    fn all_any_and_with_x() {
        let msg = table(&[("a", s("1")), ("b", FieldValue::I32(2)), ("x-k", s("v"))]);
        assert!(headers_match(
            &table(&[("a", s("1")), ("b", FieldValue::I64(2))]),
            Some(&msg)
        ));
        assert!(!headers_match(
            &table(&[("a", s("1")), ("c", s("3"))]),
            Some(&msg)
        ));
        assert!(headers_match(
            &table(&[("x-match", s("any")), ("a", s("1")), ("c", s("3"))]),
            Some(&msg)
        ));
        assert!(!headers_match(&table(&[("x-match", s("any"))]), Some(&msg)));
        assert!(headers_match(&table(&[]), None));
        // plain `all` ignores x- keys in the binding; all-with-x does not
        assert!(headers_match(
            &table(&[("x-k", s("nope")), ("a", s("1"))]),
            Some(&msg)
        ));
        assert!(!headers_match(
            &table(&[("x-match", s("all-with-x")), ("x-k", s("nope"))]),
            Some(&msg)
        ));
        assert!(headers_match(
            &table(&[("x-match", s("any-with-x")), ("x-k", s("v"))]),
            Some(&msg)
        ));
        // void: presence only
        assert!(headers_match(
            &table(&[("b", FieldValue::Void)]),
            Some(&msg)
        ));
        // string "2" is not integer 2
        assert!(!headers_match(&table(&[("b", s("2"))]), Some(&msg)));
        assert!(validate_binding_args(&table(&[("x-match", s("some"))])).is_err());
    }
}
