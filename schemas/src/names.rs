//! Reversible mapping of database identifiers to Avro names.
//!
//! Avro names match `[A-Za-z_][A-Za-z0-9_]*`. Table and column names that
//! already do, and never put two underscores together, are kept as they
//! are (`customer_id` stays `customer_id`). Anything else is escaped as
//! `__` + the lowercase hex of the character's UTF-8 bytes + `_`:
//! `order-lines` becomes `order__2d_lines`, `2fa` becomes `__32_fa`.
//! A literal `_` is escaped too where it would touch another `_` (so
//! `a__b` becomes `a__5f___5f_b`), which is what makes the mapping
//! reversible: in an encoded name, `__` always starts an escape.

fn plain(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || (!first && c.is_ascii_digit())
}

fn escape(out: &mut String, c: char) {
    out.push_str("__");
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out.push('_');
}

/// The Avro name for a database identifier.
pub fn to_avro_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.is_empty() {
        return "___".into();
    }
    // Whether each character is emitted as itself.
    let mut literal: Vec<bool> = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| plain(c, i == 0) || c == '_')
        .collect();
    // An emitted `_` must not touch another `_` (a literal one, or the
    // first or last character of an escape).
    loop {
        let mut changed = false;
        for i in 0..chars.len() {
            if chars[i] != '_' || !literal[i] {
                continue;
            }
            let prev_underscore = i > 0 && (!literal[i - 1] || chars[i - 1] == '_');
            let next_underscore = i + 1 < chars.len() && (!literal[i + 1] || chars[i + 1] == '_');
            if prev_underscore || next_underscore {
                literal[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut out = String::with_capacity(name.len());
    for (c, lit) in chars.iter().zip(literal) {
        if lit {
            out.push(*c);
        } else {
            escape(&mut out, *c);
        }
    }
    out
}

/// The database identifier an Avro name made by [`to_avro_name`] stands
/// for; `None` if it is not such a name.
pub fn from_avro_name(avro: &str) -> Option<String> {
    let b = avro.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'_' && b.get(i + 1) == Some(&b'_') {
            i += 2;
            let start = i;
            while i < b.len() && b[i] != b'_' {
                i += 1;
            }
            let hex = avro.get(start..i)?;
            if i >= b.len() || hex.len() % 2 != 0 {
                return None;
            }
            for k in (0..hex.len()).step_by(2) {
                out.push(u8::from_str_radix(&hex[k..k + 2], 16).ok()?);
            }
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `s` is a valid Avro name.
pub fn is_valid_avro_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_names_stay() {
        for n in ["customers", "customer_id", "_private", "a_b_c", "T1"] {
            assert_eq!(to_avro_name(n), n);
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(to_avro_name("order-lines"), "order__2d_lines");
        assert_eq!(to_avro_name("2fa"), "__32_fa");
        assert_eq!(to_avro_name("a__b"), "a__5f___5f_b");
        assert_eq!(to_avro_name("größe"), "gr__c3b6___c39f_e");
        for n in ["a__b", "a_-b", "_", "__", "x_", "é_", "_é", ""] {
            let e = to_avro_name(n);
            assert!(is_valid_avro_name(&e), "{n:?} -> {e:?}");
            assert_eq!(from_avro_name(&e).as_deref(), Some(n), "{n:?} -> {e:?}");
        }
    }

    proptest! {
        #[test]
        fn reversible_and_valid(s in "\\PC{0,12}") {
            let e = to_avro_name(&s);
            prop_assert!(is_valid_avro_name(&e), "{:?} -> {:?}", s, e);
            prop_assert_eq!(from_avro_name(&e), Some(s));
        }

        #[test]
        fn reversible_underscore_soup(s in "[a_\\-1]{0,10}") {
            let e = to_avro_name(&s);
            prop_assert!(is_valid_avro_name(&e), "{:?} -> {:?}", s, e);
            prop_assert_eq!(from_avro_name(&e), Some(s));
        }
    }
}
