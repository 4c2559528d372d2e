//! Keyset pagination: page requests from Relay arguments, and the opaque cursors that
//! point at a row by its sort key, so page 1,000 costs what page 1 costs.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// The largest `first` or `last` accepted.
pub const MAX_PAGE_SIZE: u64 = 100;

/// Which end of the ordered list a page is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `first`/`after`: rows following the cursor in list order.
    Forward,
    /// `last`/`before`: rows preceding the cursor in list order.
    Backward,
}

/// A validated page request over rows of sort key `K`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page<K> {
    pub direction: Direction,
    /// How many rows the client asked for (1..=100). Repositories fetch one more to learn
    /// whether another page exists.
    pub limit: u64,
    /// Exclusive bound: the row the client's cursor points at.
    pub cursor: Option<K>,
}

/// The sort key of users: their UUIDv7 id, which is in creation order.
pub type UserKey = Uuid;

/// The sort key of posts: newest first, the id breaking ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PostKey {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl<K: CursorKey> Page<K> {
    /// Builds a page from Relay arguments, rejecting what is out of range or ambiguous.
    pub fn from_args(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<Self> {
        let direction = match (first.is_some() || after.is_some(), last.is_some() || before.is_some()) {
            (true, true) => {
                return Err(ApiError::bad_input(
                    "page forward with `first`/`after` or backward with `last`/`before`, not both",
                ));
            }
            (_, true) => Direction::Backward,
            _ => Direction::Forward,
        };
        let (size, argument, cursor) = match direction {
            Direction::Forward => (first, "first", after),
            Direction::Backward => (last, "last", before),
        };
        let limit = match size {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if (1..=MAX_PAGE_SIZE as i32).contains(&n) => n as u64,
            Some(n) => {
                return Err(ApiError::bad_input(format!(
                    "`{argument}` must be between 1 and {MAX_PAGE_SIZE}, got {n}"
                )));
            }
        };
        let cursor = cursor.as_deref().map(K::decode).transpose()?;
        Ok(Self { direction, limit, cursor })
    }

    /// The first page in list order.
    pub fn first(limit: u64) -> Self {
        Self { direction: Direction::Forward, limit, cursor: None }
    }
}

/// What a connection field multiplies the cost of its selection by, for the complexity
/// limit: the page size asked for (out-of-range sizes are refused later, when resolved).
pub fn page_cost(first: Option<i32>, last: Option<i32>) -> usize {
    first.or(last).map_or(DEFAULT_PAGE_SIZE as usize, |n| n.clamp(1, MAX_PAGE_SIZE as i32) as usize)
}

/// A sort key that travels to clients as an opaque cursor.
pub trait CursorKey: Sized {
    fn encode(&self) -> String;
    fn decode(cursor: &str) -> ApiResult<Self>;
}

const USER_PREFIX: &str = "user:";
const POST_PREFIX: &str = "post:";

impl CursorKey for UserKey {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{USER_PREFIX}{self}"))
    }

    fn decode(cursor: &str) -> ApiResult<Self> {
        let text = decode_text(cursor)?;
        text.strip_prefix(USER_PREFIX)
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| invalid_cursor(cursor))
    }
}

impl CursorKey for PostKey {
    fn encode(&self) -> String {
        let micros = self.created_at.timestamp_micros();
        URL_SAFE_NO_PAD.encode(format!("{POST_PREFIX}{micros}:{}", self.id))
    }

    fn decode(cursor: &str) -> ApiResult<Self> {
        let text = decode_text(cursor)?;
        text.strip_prefix(POST_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(micros, id)| {
                let created_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
                Some(PostKey { created_at, id: Uuid::parse_str(id).ok()? })
            })
            .ok_or_else(|| invalid_cursor(cursor))
    }
}

fn decode_text(cursor: &str) -> ApiResult<String> {
    // A real cursor is well under 100 bytes; refuse to decode anything far larger.
    if cursor.len() > 200 {
        return Err(invalid_cursor(cursor));
    }
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| invalid_cursor(cursor))
}

fn invalid_cursor(cursor: &str) -> ApiError {
    let shown: String = cursor.chars().take(60).collect();
    ApiError::bad_input(format!(
        "`{shown}` is not a cursor of this list: pass a `cursor` or `pageInfo` cursor returned by it"
    ))
}

/// Relay's `pageInfo` flags for a page: `(hasNextPage, hasPreviousPage)`. Past a cursor
/// there is taken to be a row on the other side (the cursor's own), which keeps the
/// answer free of an extra query.
pub fn has_next_and_previous<K>(page: &Page<K>, more: bool) -> (bool, bool) {
    match page.direction {
        Direction::Forward => (more, page.cursor.is_some()),
        Direction::Backward => (page.cursor.is_some(), more),
    }
}

/// Turns the rows a repository fetched (up to `limit + 1`, in query order) into one page
/// in list order, and says whether more rows lie beyond it.
pub fn finish_page<T>(page_direction: Direction, limit: u64, mut rows: Vec<T>) -> (Vec<T>, bool) {
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    if page_direction == Direction::Backward {
        rows.reverse();
    }
    (rows, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let user = Uuid::now_v7();
        assert_eq!(UserKey::decode(&user.encode()).unwrap(), user);
        let post = PostKey {
            created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(PostKey::decode(&post.encode()).unwrap(), post);
    }

    #[test]
    fn a_cursor_of_another_list_is_rejected() {
        let user_cursor = Uuid::now_v7().encode();
        assert!(matches!(PostKey::decode(&user_cursor), Err(ApiError::BadUserInput(_))));
        assert!(matches!(UserKey::decode("not base64!"), Err(ApiError::BadUserInput(_))));
    }

    #[test]
    fn page_sizes_outside_one_to_a_hundred_are_rejected() {
        for n in [0, -1, 101, 1000, i32::MAX, i32::MIN] {
            assert!(Page::<UserKey>::from_args(Some(n), None, None, None).is_err(), "first: {n}");
            assert!(Page::<UserKey>::from_args(None, None, Some(n), None).is_err(), "last: {n}");
        }
        assert_eq!(Page::<UserKey>::from_args(None, None, None, None).unwrap().limit, 20);
        assert_eq!(Page::<UserKey>::from_args(Some(100), None, None, None).unwrap().limit, 100);
    }

    #[test]
    fn mixing_directions_is_rejected() {
        assert!(Page::<UserKey>::from_args(Some(5), None, Some(5), None).is_err());
    }
}
