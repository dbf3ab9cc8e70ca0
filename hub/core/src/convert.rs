//! Conversions every source needs for its values: decimal digits to
//! Avro's decimal bytes, calendar dates to day numbers.

/// Decimal digits (no sign, no point) to minimal big-endian two's
/// complement bytes, negated when `negative`.
pub fn digits_to_twos(digits: &str, negative: bool) -> Vec<u8> {
    // Magnitude in base 256, big-endian, with a spare leading zero byte.
    let mut mag: Vec<u8> = vec![0];
    for d in digits.bytes() {
        let mut carry = u32::from(d - b'0');
        for b in mag.iter_mut().rev() {
            let v = u32::from(*b) * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry > 0 {
            mag.insert(0, carry as u8);
        }
        if mag[0] != 0 {
            mag.insert(0, 0);
        }
    }
    if negative {
        let mut carry = 1u16;
        for b in mag.iter_mut().rev() {
            let v = u16::from(!*b) + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while mag.len() > 1 && mag[0] == 0xff && mag[1] & 0x80 != 0 {
            mag.remove(0);
        }
    } else {
        while mag.len() > 1 && mag[0] == 0 && mag[1] & 0x80 == 0 {
            mag.remove(0);
        }
    }
    mag
}

/// `v` as minimal big-endian two's complement bytes (Avro's decimal
/// encoding of an unscaled value), without going through text.
pub fn i128_to_twos(v: i128) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut start = 0;
    while start < b.len() - 1
        && ((b[start] == 0 && b[start + 1] & 0x80 == 0)
            || (b[start] == 0xff && b[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    b[start..].to_vec()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A MySQL date with a zero month or day (`0000-00-00`, `2024-00-15`,
/// allowed under a permissive sql_mode) as MySQL prints it, with the time
/// `(h, m, s, microseconds)` of a DATETIME or TIMESTAMP (the fraction only
/// when not zero).
pub fn mysql_zero_date(y: i64, m: u32, d: u32, time: Option<(i64, i64, i64, i64)>) -> String {
    let mut out = format!("{y:04}-{m:02}-{d:02}");
    if let Some((h, mi, s, us)) = time {
        out.push_str(&format!(" {h:02}:{mi:02}:{s:02}"));
        if us != 0 {
            out.push_str(&format!(".{us:06}"));
        }
    }
    out
}

/// The EWKB flag in a WKB geometry type: an SRID follows the type.
const EWKB_SRID_FLAG: u32 = 0x2000_0000;

/// A geometry in MySQL's storage format (the SRID as 4 bytes little
/// endian, then WKB) as WKB, or, when the SRID is not 0, as EWKB (PostGIS'
/// extended WKB: the type's `0x20000000` flag set and the SRID after it,
/// in the WKB's byte order), so the SRID travels with the value. `None`
/// when the bytes are not that format.
pub fn ewkb_from_mysql(b: &[u8]) -> Option<Vec<u8>> {
    let srid = u32::from_le_bytes(b.get(..4)?.try_into().ok()?);
    let wkb = &b[4..];
    let (little, ty) = wkb_type(wkb)?;
    if srid == 0 {
        return Some(wkb.to_vec());
    }
    let put = |v: u32| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let mut out = Vec::with_capacity(wkb.len() + 4);
    out.push(wkb[0]);
    out.extend_from_slice(&put(ty | EWKB_SRID_FLAG));
    out.extend_from_slice(&put(srid));
    out.extend_from_slice(&wkb[5..]);
    Some(out)
}

/// WKB or EWKB as its SRID (0 when none is given) and plain WKB: what
/// `ST_GeomFromWKB(wkb, srid)` takes. `None` when the bytes are neither.
pub fn wkb_and_srid(b: &[u8]) -> Option<(u32, Vec<u8>)> {
    let (little, ty) = wkb_type(b)?;
    if ty & EWKB_SRID_FLAG == 0 {
        return Some((0, b.to_vec()));
    }
    let raw: [u8; 4] = b.get(5..9)?.try_into().ok()?;
    let srid = if little {
        u32::from_le_bytes(raw)
    } else {
        u32::from_be_bytes(raw)
    };
    let put = |v: u32| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let mut wkb = Vec::with_capacity(b.len() - 4);
    wkb.push(b[0]);
    wkb.extend_from_slice(&put(ty & !EWKB_SRID_FLAG));
    wkb.extend_from_slice(&b[9..]);
    Some((srid, wkb))
}

/// A WKB header: little endian or not, and the geometry type.
fn wkb_type(b: &[u8]) -> Option<(bool, u32)> {
    let little = match b.first()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let raw: [u8; 4] = b.get(1..5)?.try_into().ok()?;
    Some((
        little,
        if little {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twos_complement_edges() {
        assert_eq!(digits_to_twos("0", false), vec![0]);
        assert_eq!(digits_to_twos("128", false), vec![0, 128]);
        assert_eq!(digits_to_twos("128", true), vec![0x80]);
        assert_eq!(digits_to_twos("129", true), vec![0xff, 0x7f]);
        assert_eq!(digits_to_twos("1", true), vec![0xff]);
        for v in [
            0i128,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            65_535,
            i128::MAX,
            i128::MIN + 1,
        ] {
            assert_eq!(
                i128_to_twos(v),
                digits_to_twos(&v.unsigned_abs().to_string(), v < 0),
                "{v}"
            );
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
    }

    #[test]
    fn geometries_keep_their_srid() {
        // POINT(1 2), little endian.
        let mut wkb = vec![1, 1, 0, 0, 0];
        wkb.extend_from_slice(&1f64.to_le_bytes());
        wkb.extend_from_slice(&2f64.to_le_bytes());
        let mysql = |srid: u32| [srid.to_le_bytes().as_slice(), &wkb].concat();
        assert_eq!(ewkb_from_mysql(&mysql(0)), Some(wkb.clone()));
        let e = ewkb_from_mysql(&mysql(4326)).expect("ewkb");
        assert_eq!(&e[..9], &[1, 1, 0, 0, 0x20, 0xe6, 0x10, 0, 0]);
        assert_eq!(wkb_and_srid(&e), Some((4326, wkb.clone())));
        assert_eq!(wkb_and_srid(&wkb), Some((0, wkb.clone())));
        // Big endian keeps its order.
        let mut be = vec![0, 0, 0, 0, 1];
        be.extend_from_slice(&1f64.to_be_bytes());
        be.extend_from_slice(&2f64.to_be_bytes());
        let e = ewkb_from_mysql(&[3857u32.to_le_bytes().as_slice(), &be].concat()).expect("be");
        assert_eq!(&e[..9], &[0, 0x20, 0, 0, 1, 0, 0, 0x0f, 0x11]);
        assert_eq!(wkb_and_srid(&e), Some((3857, be)));
        assert_eq!(ewkb_from_mysql(&[0, 0, 0]), None);
        assert_eq!(ewkb_from_mysql(&[0, 0, 0, 0, 7, 1, 0, 0, 0]), None);
        assert_eq!(wkb_and_srid(&[1, 1]), None);
    }
}
