//! The live side: `postCreated`, `postUpdated`, `postDeleted`, `userUpdated`.
//!
//! A subscription is not executed as one long stream per client. Its document is run
//! twice over, by the hub (`subscriptions::hub`) through [`super::Executor`]: once when it
//! is subscribed to, to learn its [`Topic`]s (the arguments, with variables and
//! fragments applied by the executor itself), and once per matching event, with that
//! event in hand, for its payload. Subscribers sending the same document with the same
//! variables and the same caller share that one execution per event.

use std::sync::{Arc, Mutex};

use async_graphql::{Context, Subscription};
use futures::Stream;
use uuid::Uuid;

use super::types::{Post, User};
use crate::events::{Event, Topic};

/// Why a subscription document is being executed.
pub(crate) enum Phase {
    /// To learn what it listens to: each field records its topic and yields nothing.
    Subscribe(Arc<Mutex<Vec<Topic>>>),
    /// To answer one event: each field whose topic matches yields its payload.
    Deliver(Arc<Event>),
}

#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Every new post, or one author's, once its transaction has committed.
    async fn post_created(&self, ctx: &Context<'_>, author_id: Option<Uuid>) -> impl Stream<Item = Post> {
        live(ctx, Topic::PostCreated { author_id }, |event| match event {
            Event::PostCreated { post } => Some(Post::from(post.clone())),
            _ => None,
        })
    }

    /// Every changed post, or one post's changes.
    async fn post_updated(&self, ctx: &Context<'_>, id: Option<Uuid>) -> impl Stream<Item = Post> {
        live(ctx, Topic::PostUpdated { id }, |event| match event {
            Event::PostUpdated { post } => Some(Post::from(post.clone())),
            _ => None,
        })
    }

    /// The id of every deleted post, or of one author's. A deleted user's posts are
    /// deleted with them, and each is announced here.
    async fn post_deleted(&self, ctx: &Context<'_>, author_id: Option<Uuid>) -> impl Stream<Item = Uuid> {
        live(ctx, Topic::PostDeleted { author_id }, |event| match event {
            Event::PostDeleted { id, .. } => Some(*id),
            _ => None,
        })
    }

    /// One user's changes; `null` once the user is deleted, as the subscription's last
    /// event (it then completes).
    async fn user_updated(&self, ctx: &Context<'_>, id: Uuid) -> impl Stream<Item = Option<User>> {
        live(ctx, Topic::UserUpdated { id }, |event| match event {
            Event::UserUpdated { user } => Some(Some(User::from(user.clone()))),
            Event::UserDeleted { .. } => Some(None),
            _ => None,
        })
    }
}

/// The field's one item for this execution: its topic recorded while subscribing, the
/// event's payload when the event matches, nothing otherwise.
fn live<T>(
    ctx: &Context<'_>,
    topic: Topic,
    payload: impl FnOnce(&Event) -> Option<T>,
) -> impl Stream<Item = T> {
    let item = match ctx.data_unchecked::<Phase>() {
        Phase::Subscribe(topics) => {
            topics.lock().unwrap_or_else(|e| e.into_inner()).push(topic);
            None
        }
        Phase::Deliver(event) => topic.matches(event).then(|| payload(event)).flatten(),
    };
    futures::stream::iter(item)
}
