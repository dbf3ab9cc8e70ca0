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
}
