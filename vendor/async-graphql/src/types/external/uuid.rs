use uuid::Uuid;

use crate::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

#[Scalar(
    internal,
    name = "UUID",
    specified_by_url = "http://tools.ietf.org/html/rfc4122"
)]
/// A UUID is a unique 128-bit number, stored as 16 octets. UUIDs are parsed as
/// Strings within GraphQL. UUIDs are used to assign unique identifiers to
/// entities without requiring a central allocating authority.
///
/// # References
///
/// * [Wikipedia: Universally Unique Identifier](http://en.wikipedia.org/wiki/Universally_unique_identifier)
/// * [RFC4122: A Universally Unique Identifier (UUID) URN Namespace](http://tools.ietf.org/html/rfc4122)
impl ScalarType for Uuid {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(s) => Ok(Uuid::parse_str(&s)?),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    // A literal that is no UUID fails validation ("Values of Correct Type"), and a variable
    // that is none fails variable coercion, before anything executes.
    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(s) if Uuid::parse_str(s).is_ok())
    }

    // Written straight into a buffer of its length: `to_string` goes through `Display`
    // and a `Formatter`, which costs more than the 36 bytes themselves.
    fn to_value(&self) -> Value {
        Value::String(hyphenated_lower(self.as_bytes()))
    }
}

/// `bytes` as a UUID's 36 characters: lower-case hex digits in groups of 8, 4, 4, 4 and 12,
/// joined by hyphens, as `Uuid::hyphenated` writes them. Each byte's two digits come from
/// one lookup, in a loop the compiler unrolls: `uuid`'s encoder writes 32 digits first,
/// one nibble at a time, then copies them around the hyphens (a UUID is written for
/// almost every object of an answer).
fn hyphenated_lower(bytes: &[u8; 16]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    const PAIRS: [[u8; 2]; 256] = {
        let mut pairs = [[0; 2]; 256];
        let mut byte = 0;
        while byte < 256 {
            pairs[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0xf]];
            byte += 1;
        }
        pairs
    };
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        text[at..at + 2].copy_from_slice(&PAIRS[usize::from(byte)]);
        at += 2;
    }
    // SAFETY: every byte of `text` is a hex digit from `DIGITS` or a hyphen: ASCII, so
    // UTF-8. `str::from_utf8` would check the 36 bytes again, which cost more than writing
    // them (the crate's one `unsafe`, hence `deny` rather than `forbid` in `lib.rs`).
    #[allow(unsafe_code)]
    unsafe {
        String::from_utf8_unchecked(text.to_vec())
    }
}
