//! The SQL of Quill, one module per aggregate. Resolvers, loaders and the seed call these
//! plain async functions over a connection; multi-row writes run in a transaction here.

mod by_position;
pub mod posts;
pub mod profiles;
pub mod users;

use chrono::{DateTime, SubsecRound as _, Utc};

/// The current time at the precision every backend stores (microseconds), so a
/// timestamp read back equals the one written and cursors compare exactly.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
