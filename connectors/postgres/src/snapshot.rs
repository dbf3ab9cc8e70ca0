//! The initial snapshot: rows of the captured tables as of the slot's
//! consistent point, read with COPY inside the snapshot the slot exported,
//! so the stream that follows starts exactly where the snapshot ends: no
//! gap, no duplicate.

/// Splits one line of COPY's text format into fields (`None` for `\N`),
/// undoing its backslash escapes.
pub fn copy_fields(line: &[u8]) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::new();
    for field in line.split(|&b| b == b'\t') {
        if field == b"\\N" {
            out.push(None);
            continue;
        }
        let mut v: Vec<u8> = Vec::with_capacity(field.len());
        let mut i = 0;
        while i < field.len() {
            let b = field[i];
            if b != b'\\' {
                v.push(b);
                i += 1;
                continue;
            }
            let Some(&e) = field.get(i + 1) else {
                return Err("line ends in a lone backslash".into());
            };
            i += 2;
            match e {
                b'b' => v.push(8),
                b'f' => v.push(12),
                b'n' => v.push(b'\n'),
                b'r' => v.push(b'\r'),
                b't' => v.push(b'\t'),
                b'v' => v.push(11),
                b'0'..=b'7' => {
                    let mut n = u32::from(e - b'0');
                    for _ in 0..2 {
                        match field.get(i) {
                            Some(&d @ b'0'..=b'7') => {
                                n = n * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    v.push((n & 0xff) as u8);
                }
                b'x' => {
                    let mut n = 0u32;
                    let mut digits = 0;
                    while digits < 2 {
                        match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                            Some(d) => {
                                n = n * 16 + d;
                                i += 1;
                                digits += 1;
                            }
                            None => break,
                        }
                    }
                    v.push(n as u8);
                }
                other => v.push(other),
            }
        }
        out.push(Some(
            String::from_utf8(v).map_err(|_| "field is not UTF-8".to_string())?,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_format() {
        assert_eq!(
            copy_fields(b"1\t\\N\ta\\tb\\\\c\\nd\t\\101\\x42"),
            Ok(vec![
                Some("1".into()),
                None,
                Some("a\tb\\c\nd".into()),
                Some("AB".into()),
            ])
        );
        assert_eq!(copy_fields(b""), Ok(vec![Some(String::new())]));
        assert!(copy_fields(b"x\\").is_err());
    }
}
