//! Card numbers (PANs) where none may be: ingest refuses any record with a value that looks like one and
//! keeps it in quarantine with the number masked, so that raw card data never reaches the event log, a
//! projection or the quarantine in the clear.
//!
//! A PAN candidate is a run of 13 to 19 digits, optionally grouped by single spaces or dashes (`4111 1111
//! 1111 1111`, `3782-822463-10005`), not touching a letter or another digit on either side, with a
//! card-scheme prefix (Visa 4; Mastercard 51–55 and 2221–2720; American Express 34 and 37; Diners Club 30,
//! 36, 38 and 39; JCB 35; Discover, UnionPay and Maestro 6) and a valid Luhn check digit. The scan runs
//! over the raw bytes, so a number in any field, quoted or not, or in a record that is not even valid
//! JSON, is found. Ids that happen to be all digits (order numbers, timestamps) pass unless they satisfy
//! all of that, about one in 30 random 16-digit strings with a scheme prefix.

use std::ops::Range;

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-')
}

/// Whether the token continues past position `at` in the direction `step` (a letter or digit, or a
/// separator joined to one: `…-a111`, as in a UUID).
fn continues(bytes: &[u8], at: Option<usize>, step: isize) -> bool {
    let Some(at) = at else { return false };
    let Some(&b) = bytes.get(at) else {
        return false;
    };
    if is_alnum(b) {
        return true;
    }
    matches!(b, b'-' | b'.')
        && at
            .checked_add_signed(step)
            .and_then(|n| bytes.get(n))
            .is_some_and(|&n| is_alnum(n))
}

/// The byte ranges of the PAN candidates in `bytes`.
pub fn find(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || continues(bytes, i.checked_sub(1), -1) {
            i += 1;
            continue;
        }
        // Extend over digits and single separators between digits.
        let start = i;
        let mut digits = Vec::with_capacity(19);
        let mut end = i;
        while end < bytes.len() {
            let b = bytes[end];
            if b.is_ascii_digit() {
                digits.push(b - b'0');
                end += 1;
            } else if is_separator(b)
                && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
                && end > start
            {
                end += 1;
            } else {
                break;
            }
        }
        let bounded = !continues(bytes, Some(end), 1);
        if bounded && looks_like_pan(&digits) {
            found.push(start..end);
        }
        i = end.max(i + 1);
    }
    found
}

fn looks_like_pan(d: &[u8]) -> bool {
    (13..=19).contains(&d.len()) && scheme_prefix(d) && luhn(d)
}

fn scheme_prefix(d: &[u8]) -> bool {
    let two = u32::from(d[0]) * 10 + u32::from(d[1]);
    let four = two * 100 + u32::from(d[2]) * 10 + u32::from(d[3]);
    d[0] == 4
        || d[0] == 6
        || (51..=55).contains(&two)
        || (2221..=2720).contains(&four)
        || matches!(two, 30 | 34 | 35 | 36 | 37 | 38 | 39)
}

/// The Luhn (mod 10) check over the digits, check digit last.
pub fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if !i.is_multiple_of(2) {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `bytes` with every digit of each range but the last four replaced by `X` (PCI DSS allows at most the
/// first six and last four in the clear; we keep only the last four).
pub fn mask(bytes: &[u8], ranges: &[Range<usize>]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for r in ranges {
        let digits: Vec<usize> = r.clone().filter(|&i| bytes[i].is_ascii_digit()).collect();
        for &i in &digits[..digits.len().saturating_sub(4)] {
            out[i] = b'X';
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_grouped_and_plain_card_numbers_of_every_scheme() {
        for pan in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "3782-822463-10005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "6200000000000005",
        ] {
            let text = format!(r#"{{"landing_page":"/pay?c={pan}&x=1"}}"#);
            let found = find(text.as_bytes());
            assert_eq!(found.len(), 1, "{pan}");
            assert_eq!(&text[found[0].clone()], pan);
            let masked = String::from_utf8(mask(text.as_bytes(), &found)).unwrap();
            assert!(!masked.contains(&pan[..6]), "{masked}");
            assert!(masked.contains(&pan[pan.len() - 4..]));
        }
        // Unquoted, as a JSON number.
        assert_eq!(find(br#"{"amount_minor":4111111111111111}"#).len(), 1);
    }

    #[test]
    fn leaves_ids_dates_and_failing_check_digits_alone() {
        for text in [
            // Luhn fails.
            r#"{"order_id":"4111111111111112"}"#,
            // No scheme prefix.
            r#"{"order_id":"1111111111111117"}"#,
            r#"{"ts":1700000000000}"#,
            // Too short or too long.
            r#"{"product_id":"44600062"}"#,
            r#"{"x":"41111111111111111111"}"#,
            // Touching letters: part of a longer token, such as a UUID or a hex id.
            r#"{"event_id":"4111111111111111a"}"#,
            r#"{"event_id":"a4111111111111111"}"#,
            r#"{"event_id":"41111111-1111-1111-a111-111111111111"}"#,
            r#"{"occurred_at":"2019-10-01T00:00:00Z"}"#,
            // The digits of a float (a decision's scores and probabilities).
            r#"{"score":0.41111111111111116,"p":[0.4111111111111111],"e":4111111111111111.5}"#,
        ] {
            assert!(find(text.as_bytes()).is_empty(), "{text}");
        }
    }

    #[test]
    fn luhn_matches_the_published_test_numbers() {
        let digits = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn(&digits("79927398713")));
        assert!(!luhn(&digits("79927398710")));
    }
}
