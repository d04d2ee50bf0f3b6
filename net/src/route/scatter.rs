//! Scatter a request's partition work to the owning shards, gather the answers in request
//! order.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use runnel_engine::rt::{self, ShardStopped};

use super::{errors, ErrorCode, Item, Need, Routed};
use crate::kafka::error_code;
use crate::partitions::{shard, Partition, Role};

/// One shard's answers: each partition's position in the request and its result.
type Answers<R> = Vec<(usize, Result<R, ErrorCode>)>;

impl<T: Clone + Send + 'static> Routed<T> {
    /// Sends each owning shard one message with its partitions and `work`, every shard at
    /// once, and returns when every message is posted (not answered).
    ///
    /// `work` runs on the owning shard, with that shard's open partitions and their inputs in
    /// request order, and answers one `R` per partition in the same order. It is called when
    /// the shard takes the message: at once for this shard, in posting order for the others
    /// (a shard pair's mailbox is FIFO). So whatever it does before its first await happens
    /// in request order across requests: Produce places its appends there and can read the
    /// next request before these complete.
    ///
    /// Takes `&self` so a long poll can scatter the same partitions again (inputs are cloned).
    pub async fn scatter<R, F, Fut>(&self, work: F) -> Scattered<R>
    where
        R: Send + 'static,
        F: Fn(Vec<(Partition, T)>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Vec<R>> + 'static,
    {
        let me = rt::shard_id();
        let mut shards = Vec::with_capacity(self.by_shard.len());
        for (&shard, items) in &self.by_shard {
            let positions = items.iter().map(|item| item.position).collect();
            let (items, work, need) = (items.clone(), work.clone(), self.need);
            let pending = if shard == me {
                ShardWork::Local(rt::spawn_local(on_owner(need, items, work)))
            } else {
                let mut submit = rt::submit_to(shard, move || on_owner(need, items, work));
                match submit.posted().await {
                    Ok(()) => ShardWork::Remote(submit),
                    Err(ShardStopped) => ShardWork::Stopped,
                }
            };
            shards.push(Pending {
                positions,
                work: pending,
            });
        }
        Scattered {
            len: self.len,
            refused: self.refused.clone(),
            shards,
        }
    }
}

/// On the owning shard: finds each item's open partition, starts `work` on those found (its
/// synchronous part runs now) and returns the future of every item's answer.
fn on_owner<T, R, F, Fut>(
    need: Need,
    items: Vec<Item<T>>,
    work: F,
) -> impl Future<Output = Answers<R>> + 'static
where
    R: 'static,
    F: Fn(Vec<(Partition, T)>) -> Fut,
    Fut: Future<Output = Vec<R>> + 'static,
{
    let state = shard::current();
    let mut answers = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    let mut found = Vec::with_capacity(items.len());
    for item in items {
        match state.partition(&item.tp) {
            Some(partition) if need == Need::AnyReplica || partition.role() == Role::Leader => {
                positions.push(item.position);
                found.push((partition, item.input));
            }
            Some(_) => answers.push((item.position, Err(error_code::NOT_LEADER_OR_FOLLOWER))),
            None if state.offline.reason(&item.tp).is_some() => {
                answers.push((item.position, Err(errors::OFFLINE)))
            }
            None => answers.push((item.position, Err(errors::NOT_OPEN))),
        }
    }
    let running = work(found);
    async move {
        let results = running.await;
        if results.len() != positions.len() {
            tracing::error!(
                given = positions.len(),
                answered = results.len(),
                "partition work answered the wrong number of partitions"
            );
        }
        let mut results = results.into_iter();
        for position in positions {
            answers.push((position, results.next().ok_or(errors::NOT_ANSWERED)));
        }
        answers
    }
}

/// A request's partition work, sent to every owning shard.
#[derive(Debug)]
pub struct Scattered<R> {
    len: usize,
    refused: Vec<(usize, ErrorCode)>,
    shards: Vec<Pending<R>>,
}

/// One shard's share of the work.
#[derive(Debug)]
struct Pending<R> {
    /// The positions of its partitions, to answer for if the shard stops.
    positions: Vec<usize>,
    work: ShardWork<R>,
}

#[derive(Debug)]
enum ShardWork<R> {
    /// Running as a task on this shard.
    Local(rt::JoinHandle<Answers<R>>),
    /// Posted to another shard, which answers through its mailbox.
    Remote(rt::SubmitTo<Answers<R>>),
    /// The shard had stopped before the work could be posted.
    Stopped,
}

impl<R> ShardWork<R> {
    async fn answers(self) -> Result<Answers<R>, ShardStopped> {
        match self {
            ShardWork::Local(task) => Ok(task.await),
            ShardWork::Remote(submit) => submit.await,
            ShardWork::Stopped => Err(ShardStopped),
        }
    }
}

impl<R: 'static> Scattered<R> {
    /// Every partition's answer, in request order: the work's result, or the error code of a
    /// partition that couldn't be served (refused when routed, not open on its shard, its
    /// shard stopped).
    pub async fn gather(self) -> Vec<Result<R, ErrorCode>> {
        let mut gathered: Vec<Option<Result<R, ErrorCode>>> =
            std::iter::repeat_with(|| None).take(self.len).collect();
        let mut put = |position: usize, result| {
            if let Some(slot) = gathered.get_mut(position) {
                *slot = Some(result);
            }
        };
        for (position, code) in self.refused {
            put(position, Err(code));
        }
        for shard in self.shards {
            match shard.work.answers().await {
                Ok(answers) => {
                    for (position, result) in answers {
                        put(position, result);
                    }
                }
                Err(ShardStopped) => {
                    for position in shard.positions {
                        put(position, Err(errors::SHARD_STOPPED));
                    }
                }
            }
        }
        gathered
            .into_iter()
            .map(|answer| answer.unwrap_or(Err(errors::NOT_ANSWERED)))
            .collect()
    }

    /// Completes as soon as any shard has finished its work (or none was sent); the others'
    /// work goes on and their answers are dropped. For waits, where the first shard to see a
    /// change is all that matters.
    pub async fn any(self) {
        let waits: Vec<Pin<Box<dyn Future<Output = ()>>>> = self
            .shards
            .into_iter()
            .map(|shard| -> Pin<Box<dyn Future<Output = ()>>> {
                Box::pin(async move {
                    let _ = shard.work.answers().await;
                })
            })
            .collect();
        if !waits.is_empty() {
            FirstOf(waits).await;
        }
    }
}

/// Completes when any of its futures does.
struct FirstOf(Vec<Pin<Box<dyn Future<Output = ()>>>>);

impl Future for FirstOf {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        for future in &mut self.0 {
            if future.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}
