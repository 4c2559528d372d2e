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
        let mut buffer = Uuid::encode_buffer();
        Value::String(self.hyphenated().encode_lower(&mut buffer).to_owned())
    }
}
