//! SeaORM entities for Quill's tables: `users`, `posts` and `profiles`, and how they relate.
//!
//! The schema itself is created by the `migration` crate; these types mirror it so the
//! API can read and write rows with typed models.

pub mod post;
pub mod profile;
pub mod user;

/// A timestamp read back from the JSON its `Serialize` writes (RFC 3339, as the user
/// cache and the event bus keep rows): parsed by chrono's RFC 3339 parser, a fifth of the
/// instructions of the lenient one its `Deserialize` uses, which was 3% of a cached
/// user's query.
mod rfc3339 {
    use std::borrow::Cow;

    use sea_orm::prelude::{ChronoDateTimeWithTimeZone, DateTimeUtc};
    use serde::{Deserialize, Deserializer, de::Error};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTimeUtc, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        ChronoDateTimeWithTimeZone::parse_from_rfc3339(&text)
            .map(|time| time.to_utc())
            .map_err(D::Error::custom)
    }
}

/// `use entity::prelude::*` brings every entity in under a distinct name.
pub mod prelude {
    pub use crate::post::{ActiveModel as PostActiveModel, Entity as Post, Model as PostModel};
    pub use crate::profile::{ActiveModel as ProfileActiveModel, Entity as Profile, Model as ProfileModel};
    pub use crate::user::{ActiveModel as UserActiveModel, Entity as User, Model as UserModel};
}

#[cfg(test)]
mod tests {
    use sea_orm::prelude::{DateTimeUtc, Uuid};

    use crate::user;

    fn ada(created_at: DateTimeUtc) -> user::Model {
        user::Model {
            id: Uuid::nil(),
            email: "ada@example.com".to_owned(),
            name: Some("Ada".to_owned()),
            created_at,
            updated_at: created_at,
        }
    }

    #[test]
    fn a_row_written_as_json_reads_back_the_same_to_the_nanosecond() {
        for text in ["2026-12-06T00:01:02.123456789Z", "2026-12-06T00:01:02Z", "1970-01-01T00:00:00.000001Z"]
        {
            let time = text.parse::<DateTimeUtc>().expect("a timestamp");
            let json = serde_json::to_string(&ada(time)).expect("a row serialises");

            let read: user::Model = serde_json::from_str(&json).expect("the row reads back");

            assert_eq!(read, ada(time), "{json}");
        }
    }

    #[test]
    fn a_timestamp_in_another_offset_reads_as_the_same_instant_and_a_bad_one_is_an_error() {
        let row = |time: &str| {
            format!(
                r#"{{"id":"{}","email":"a@b.c","name":null,"created_at":"{time}","updated_at":"{time}"}}"#,
                Uuid::nil()
            )
        };

        let shifted: user::Model =
            serde_json::from_str(&row("2026-12-06T02:00:00+02:00")).expect("an offset reads");
        let refused = serde_json::from_str::<user::Model>(&row("yesterday"));

        assert_eq!(shifted.created_at, "2026-12-06T00:00:00Z".parse::<DateTimeUtc>().expect("a timestamp"));
        assert!(refused.is_err());
    }
}
