//! A response's JSON written into chunks of a fixed size and sent as they are.
//!
//! Written into one `Vec`, a 90 KB answer grew by doubling: ten reallocations, each
//! copying all that was written so far, and, at the last, the old 64 KB buffer and the new
//! 128 KB one alive at once, for every request in flight. In chunks, nothing written is
//! copied again, and no buffer outgrows the chunk size (BENCHMARKS.md, "Responses written
//! in chunks"). The body's length is known once it is written, so it still goes out with a
//! `Content-Length`.
//!
//! A GraphQL value (`data`, most of an answer) is written by [`Chunks::write_value`]
//! rather than through serde: the same bytes, without serde's calls for every key and
//! value, and with a short string that needs no escaping (every key, a GraphQL name, and
//! every `__typename`) copied as it is.

use std::{
    collections::VecDeque,
    io,
    mem::MaybeUninit,
    pin::Pin,
    task::{Context, Poll},
};

use async_graphql::Value;
use axum::body::Bytes;
use http_body::{Frame, SizeHint};
use sonic_rs::{
    format::{CompactFormatter, Formatter as _},
    writer::WriteExt,
};

/// The size of a chunk: small enough for the allocator to keep reusing its pages, large
/// enough that a large answer takes few.
const CHUNK_BYTES: usize = 16 * 1024;

/// The longest string [`quote_short_and_plain`] writes itself.
const SHORT_STRING: usize = 16;

/// The room [`quote_short_and_plain`] writes in: a short string, its quotes and
/// what comes before and after it.
const QUOTED: usize = 24;

/// The bytes a JSON string escapes: `"`, `\` and the control characters.
const ESCAPED: [bool; 256] = {
    let mut escaped = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        escaped[byte] = true;
        byte += 1;
    }
    escaped[b'"' as usize] = true;
    escaped[b'\\' as usize] = true;
    escaped
};

/// Whether a byte of `word` is one JSON escapes, by the usual word-at-a-time tests (each
/// exact as a whole for a bound up to 0x80).
#[inline(always)]
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let below = |word: u64, bound: u8| word.wrapping_sub(ONES * u64::from(bound)) & !word & HIGHS;
    let equal = |byte: u8| below(word ^ (ONES * u64::from(byte)), 1);
    (below(word, 0x20) | equal(b'"') | equal(b'\\')) != 0
}

/// Writes `lead` (an object's `{` or `,` before a key), `text` quoted, then `after` at the
/// start of `room`, and says how many bytes it wrote, when `text` is at most
/// [`SHORT_STRING`] bytes and has nothing to escape, as every key the executor writes (a
/// GraphQL name) and every `__typename` has; otherwise `None`, having written part of
/// `room`, which nothing then reads. Checked and copied two words at a time (overlapping
/// when the length is not eight or sixteen): for strings this short, a loop over the bytes
/// and a call to `memcpy` cost more than the bytes themselves. `room` is the spare capacity
/// of the chunk, so nothing is laid out elsewhere first and copied. Longer strings go to
/// sonic-rs's SIMD scan.
#[inline(always)]
fn quote_short_and_plain(
    room: &mut [MaybeUninit<u8>; QUOTED],
    lead: Option<u8>,
    text: &[u8],
    after: &[u8],
) -> Option<usize> {
    let len = text.len();
    let at = match lead {
        Some(byte) => {
            room[0].write(byte);
            1
        }
        None => 0,
    };
    room[at].write(b'"');
    if len > SHORT_STRING {
        return None;
    } else if len >= 8 {
        let head: [u8; 8] = text[..8].try_into().ok()?;
        let tail: [u8; 8] = text[len - 8..].try_into().ok()?;
        if needs_escape(u64::from_le_bytes(head)) || needs_escape(u64::from_le_bytes(tail)) {
            return None;
        }
        room[at + 1..at + 9].copy_from_slice(&head.map(MaybeUninit::new));
        room[at + len - 7..at + len + 1].copy_from_slice(&tail.map(MaybeUninit::new));
    } else if len >= 4 {
        let head: [u8; 4] = text[..4].try_into().ok()?;
        let tail: [u8; 4] = text[len - 4..].try_into().ok()?;
        if needs_escape(u64::from(u32::from_le_bytes(head)) | u64::from(u32::from_le_bytes(tail)) << 32) {
            return None;
        }
        room[at + 1..at + 5].copy_from_slice(&head.map(MaybeUninit::new));
        room[at + len - 3..at + len + 1].copy_from_slice(&tail.map(MaybeUninit::new));
    } else {
        for (i, &byte) in text.iter().enumerate() {
            if ESCAPED[usize::from(byte)] {
                return None;
            }
            room[at + 1 + i].write(byte);
        }
    }
    room[at + len + 1].write(b'"');
    let used = at + len + 2 + after.len();
    for (slot, &byte) in room[at + len + 2..used].iter_mut().zip(after) {
        slot.write(byte);
    }
    Some(used)
}

/// The JSON `write` writes, in chunks.
pub(super) fn to_body(write: impl FnOnce(&mut Chunks) -> io::Result<()>) -> io::Result<JsonBody> {
    let mut chunks = Chunks { full: VecDeque::new(), current: Vec::new() };
    write(&mut chunks)?;
    let Chunks { mut full, current } = chunks;
    if !current.is_empty() {
        full.push_back(Bytes::from(current));
    }
    let length = full.iter().map(|chunk| chunk.len() as u64).sum();
    Ok(JsonBody { chunks: full, length })
}

/// The chunks written so far and the one being written.
pub(super) struct Chunks {
    full: VecDeque<Bytes>,
    current: Vec<u8>,
}

impl Chunks {
    /// `bytes`, already JSON, as they are.
    #[inline]
    pub(super) fn write_raw(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.current.extend_from_slice(bytes);
    }

    /// `value` as JSON, through its `Serialize` (sonic-rs).
    pub(super) fn write_serde(&mut self, value: &impl serde::Serialize) -> io::Result<()> {
        sonic_rs::to_writer(&mut *self, value).map_err(io::Error::other)
    }

    /// `value` as JSON: the bytes its `Serialize` gives through sonic-rs.
    pub(super) fn write_value(&mut self, value: &Value) -> io::Result<()> {
        match value {
            Value::Null => self.write_raw(b"null"),
            Value::Boolean(true) => self.write_raw(b"true"),
            Value::Boolean(false) => self.write_raw(b"false"),
            Value::Number(number) => match (number.as_i64(), number.as_u64()) {
                (Some(n), _) => self.write_raw(itoa::Buffer::new().format(n).as_bytes()),
                (None, Some(n)) => self.write_raw(itoa::Buffer::new().format(n).as_bytes()),
                (None, None) => self.write_serde(number)?,
            },
            Value::String(text) => self.write_str(text)?,
            Value::Enum(name) => self.write_str(name)?,
            Value::Binary(_) => self.write_serde(value)?,
            Value::List(items) => {
                self.write_raw(b"[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.write_raw(b",");
                    }
                    self.write_value(item)?;
                }
                self.write_raw(b"]");
            }
            Value::Object(fields) if fields.is_empty() => self.write_raw(b"{}"),
            Value::Object(fields) => {
                let mut lead = b'{';
                for (key, value) in fields.iter() {
                    self.write_key(lead, key)?;
                    lead = b',';
                    // A string, most of an answer's values, without a call of its own.
                    match value {
                        Value::String(text) => self.write_str(text)?,
                        value => self.write_value(value)?,
                    }
                }
                self.write_raw(b"}");
            }
        }
        Ok(())
    }

    /// An object's key, after `lead` (the object's `{`, or the `,` after its last value),
    /// and its colon.
    #[inline]
    fn write_key(&mut self, lead: u8, key: &str) -> io::Result<()> {
        self.write_string_between(Some(lead), key, b":")
    }

    /// A string value.
    #[inline]
    fn write_str(&mut self, text: &str) -> io::Result<()> {
        self.write_string_between(None, text, b"")
    }

    /// `lead`, `text` quoted and escaped as sonic-rs escapes it, then `after`: written in
    /// place when `text` is short and plain.
    #[inline(always)]
    fn write_string_between(&mut self, lead: Option<u8>, text: &str, after: &[u8]) -> io::Result<()> {
        self.reserve(QUOTED);
        let written = self.current.len();
        let room = self.current.spare_capacity_mut()[..QUOTED].as_mut_array().expect("room was reserved");
        if let Some(used) = quote_short_and_plain(room, lead, text.as_bytes(), after) {
            // SAFETY: `quote_short_and_plain` has initialised the first `used` bytes of the
            // spare capacity, and nothing has touched `current` since.
            unsafe { self.current.set_len(written + used) };
        } else {
            if let Some(byte) = lead {
                self.write_raw(&[byte]);
            }
            CompactFormatter.write_string_fast(self, text, true)?;
            self.write_raw(after);
        }
        Ok(())
    }

    /// Room for `additional` more bytes in the current chunk. Called for every token
    /// written, so the check is inlined and the new chunk is not.
    #[inline(always)]
    fn reserve(&mut self, additional: usize) {
        if self.current.capacity() - self.current.len() < additional {
            self.next_chunk(additional);
        }
    }

    /// Seals the current chunk and starts one with room for `additional` bytes (more than
    /// the chunk size only for a single write that is).
    #[cold]
    fn next_chunk(&mut self, additional: usize) {
        let next = Vec::with_capacity(additional.max(CHUNK_BYTES));
        let full = std::mem::replace(&mut self.current, next);
        if !full.is_empty() {
            self.full.push_back(Bytes::from(full));
        }
    }
}

impl io::Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_raw(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WriteExt for Chunks {
    #[inline(always)]
    fn reserve_with(&mut self, additional: usize) -> io::Result<&mut [MaybeUninit<u8>]> {
        self.reserve(additional);
        Ok(&mut self.current.spare_capacity_mut()[..additional])
    }

    #[inline(always)]
    unsafe fn flush_len(&mut self, additional: usize) -> io::Result<()> {
        // SAFETY: the serialiser has initialised `additional` bytes of the spare capacity
        // `reserve_with` returned, and nothing has touched `current` since.
        unsafe { self.current.set_len(self.current.len() + additional) };
        Ok(())
    }
}

/// A written JSON body: its chunks, sent in order, and its length.
pub(super) struct JsonBody {
    chunks: VecDeque<Bytes>,
    /// Bytes not yet sent.
    length: u64,
}

impl http_body::Body for JsonBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let chunk = self.chunks.pop_front();
        if let Some(chunk) = &chunk {
            self.length -= chunk.len() as u64;
        }
        Poll::Ready(chunk.map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{Name, ObjectMap};

    use super::*;

    async fn sent(body: JsonBody) -> Bytes {
        axum::body::to_bytes(axum::body::Body::new(body), usize::MAX).await.expect("infallible")
    }

    fn written(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        let body = to_body(|chunks| chunks.write_value(value)).expect("a value is written");
        for chunk in body.chunks {
            out.extend_from_slice(&chunk);
        }
        out
    }

    fn object(fields: Vec<(&str, Value)>) -> Value {
        Value::Object(fields.into_iter().map(|(k, v)| (Name::new(k), v)).collect::<ObjectMap<_>>())
    }

    /// Keys and strings that need escaping, or not, around the 32-byte blocks sonic-rs scans.
    fn awkward_value() -> Value {
        let strings = [
            "",
            "plain",
            "quote \" and backslash \\ and slash /",
            "control \u{0} \u{1f} \n \t \r \u{8} \u{c}",
            "é, 漢字, emoji 🦀, and U+2028 \u{2028}",
            "a string longer than thirty-two bytes, with a \" past the first block",
            "0123456789abcdef0123456789abcdef\"",
            "0123456789abcde\"",
            "0123456789abcdef\"",
            "0123456789abcdef",
            "\u{1f}",
            "\u{7f} is not escaped",
        ];
        let mut fields: Vec<(&str, Value)> = vec![
            ("null", Value::Null),
            ("yes", Value::Boolean(true)),
            ("no", Value::Boolean(false)),
            ("zero", Value::from(0)),
            ("negative", Value::from(i64::MIN)),
            ("huge", Value::from(u64::MAX)),
            ("enum", Value::Enum(Name::new("ADMIN"))),
            ("emptyList", Value::List(vec![])),
            ("emptyObject", object(vec![])),
            ("a\"b", Value::from("key with a quote")),
            ("é", Value::from("key not ASCII")),
            ("with space", Value::from("key with a space")),
            ("", Value::from("empty key")),
            ("line\nbreak", Value::from("key with a newline")),
        ];
        fields.extend(strings.iter().map(|s| ("s", Value::from(*s))));
        let list = Value::List(strings.iter().map(|s| Value::from(*s)).collect());
        let nested = object(vec![("list", list), ("inner", object(vec![("id", Value::from("x"))]))]);
        fields.push(("nested", Value::List(vec![nested.clone(), Value::Null, nested])));
        object(fields)
    }

    #[test]
    fn a_value_is_written_as_serde_json_and_sonic_rs_write_it() {
        let value = awkward_value();

        let written = written(&value);

        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&serde_json::to_vec(&value).unwrap())
        );
        assert_eq!(written, sonic_rs::to_vec(&value).unwrap());
    }

    #[test]
    fn every_byte_that_needs_escaping_is_escaped_wherever_it_stands_in_a_short_string() {
        let bytes: [&str; 16] = [
            "\u{0}", "\u{1}", "\u{1f}", " ", "!", "\"", "#", "\\", "[", "]", "~", "\u{7f}", "\u{80}", "é",
            "\u{ff}", "🦀",
        ];
        for len in 0..=SHORT_STRING + 2 {
            for at in 0..len {
                for byte in bytes {
                    let text = format!("{}{byte}{}", "a".repeat(at), "b".repeat(len - at - 1));
                    let string = Value::from(text.clone());
                    let key = object(vec![(&text, Value::Null)]);
                    let second_key = object(vec![("first", Value::from(0)), (&text, Value::from(&*text))]);

                    assert_eq!(written(&string), serde_json::to_vec(&string).unwrap(), "{text:?}");
                    assert_eq!(written(&key), serde_json::to_vec(&key).unwrap(), "{text:?}");
                    assert_eq!(written(&second_key), serde_json::to_vec(&second_key).unwrap(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn keys_shared_by_many_objects_are_written_alike_in_each() {
        let texts =
            ["id", "__typename", "a\"b", "", "0123456789abcdef", "0123456789abcdefg", "é", "line\nbreak"];
        // Each text twice, as two names: the same text at two addresses, as the executor
        // gives every object of a selection the same name for a key.
        let names: Vec<Name> = texts.iter().chain(&texts).map(Name::new).collect();
        let items = (0..200)
            .map(|i| {
                let fields = names.iter().cycle().skip(i * 3 % names.len()).take(texts.len());
                Value::Object(fields.map(|name| (name.clone(), Value::from(i))).collect())
            })
            .collect();
        let value = object(vec![("items", Value::List(items))]);

        assert_eq!(
            String::from_utf8_lossy(&written(&value)),
            String::from_utf8_lossy(&serde_json::to_vec(&value).unwrap())
        );
    }

    #[test]
    fn floats_and_bytes_are_written_as_sonic_rs_writes_them() {
        let floats = [0.1, 1.5, -0.0, 1e300, -2.5e-300, 123456789.125, f64::MAX, f64::MIN_POSITIVE];
        let mut items: Vec<Value> = floats.iter().map(|f| Value::from(*f)).collect();
        items.push(Value::Binary(Bytes::from_static(&[0, 1, 255])));
        let value = Value::List(items);

        assert_eq!(written(&value), sonic_rs::to_vec(&value).unwrap());
    }

    #[tokio::test]
    async fn a_body_of_many_chunks_is_the_json_of_its_value_and_says_its_length() {
        let items = (0..5000).map(|i| Value::from(format!("item \"{i}\" of five thousand"))).collect();
        let value = object(vec![("items", Value::List(items))]);

        let body = to_body(|chunks| chunks.write_value(&value)).expect("a value is written");

        assert!(body.chunks.len() > 5, "{} chunks", body.chunks.len());
        assert!(body.chunks.iter().all(|chunk| chunk.len() <= CHUNK_BYTES));
        let expected = serde_json::to_vec(&value).expect("a value serialises");
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(expected.len() as u64));
        assert_eq!(sent(body).await, expected);
    }

    #[tokio::test]
    async fn a_small_body_is_one_chunk() {
        let body = to_body(|chunks| chunks.write_serde(&serde_json::json!({ "data": { "id": 1 } })))
            .expect("a value is written");

        assert_eq!(body.chunks.len(), 1);
        assert_eq!(sent(body).await, r#"{"data":{"id":1}}"#);
    }
}
