//! Asking a peer's replica in its place: when the peer fails before it
//! answers (a retry), or, with a hedge delay configured, when it has not
//! answered by then (a hedge: both are asked, the first to answer is kept
//! and the other call dropped).
//!
//! A replica holds the same reads as its peer, so whichever answers, the
//! merged result is the same; its rows name the replica as their node.
//! Retries and hedges draw on a retry budget (tower's [`TpsBudget`]): at
//! most a fifth of the calls made over the last ten seconds, plus ten a
//! second, so a struggling federation is not sent twice its load.
//!
//! "Answered" means the first message of the answer arrived: once a peer
//! has started streaming rows, the search stays with it (switching
//! mid-answer could not keep the order exact).

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::Status;
use tower::retry::budget::{Budget, TpsBudget};

/// An answer's messages, as they stream in.
pub type Chunks<T> = BoxStream<'static, Result<T, Status>>;

/// Who answered in a peer's place, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaced {
    /// The replica's node name.
    pub by: String,
    /// Why it was asked: the peer's error, or its being slower than the
    /// hedge delay.
    pub why: String,
}

/// When to ask a replica, and the budget for doing so.
pub struct Hedge {
    after: Option<Duration>,
    budget: TpsBudget,
}

impl std::fmt::Debug for Hedge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hedge").field("after", &self.after).finish()
    }
}

/// An answer whose first message has arrived (or that ended at once).
type Started<T> = (Option<Result<T, Status>>, Chunks<T>);

async fn start<T>(mut chunks: Chunks<T>) -> Started<T> {
    (chunks.next().await, chunks)
}

/// The answer again, from its first message.
fn rejoin<T: Send + 'static>((first, rest): Started<T>) -> Chunks<T> {
    futures::stream::iter(first).chain(rest).boxed()
}

/// Why an answer failed before it started, if it did.
fn failure<T>(s: &Started<T>) -> Option<String> {
    match &s.0 {
        Some(Ok(_)) => None,
        Some(Err(status)) => Some(nadc_bof::describe_status(status)),
        None => Some("the answer ended before it began".into()),
    }
}

impl Hedge {
    /// Retries always (within the budget); hedges after `after`, if set.
    pub fn new(after: Option<Duration>) -> Self {
        Self {
            after,
            budget: TpsBudget::new(Duration::from_secs(10), 10, 0.2),
        }
    }

    /// `peer`'s answer, or `replica`'s in its place (made only if it is
    /// asked), and who answered in the peer's place if anyone did. If both
    /// fail, the answer is the peer's error with the replica's.
    pub async fn open<T: Send + 'static>(
        &self,
        peer: (&str, Chunks<T>),
        replica: (&str, impl FnOnce() -> Chunks<T>),
    ) -> (Chunks<T>, Option<Replaced>) {
        let ((peer_name, chunks), (replica_name, ask_replica)) = (peer, replica);
        self.budget.deposit();
        let first = start(chunks);
        tokio::pin!(first);
        let hedge = async {
            match self.after {
                Some(d) => tokio::time::sleep(d).await,
                None => futures::future::pending().await,
            }
        };
        let replaced = |why: String| {
            Some(Replaced {
                by: replica_name.to_string(),
                why,
            })
        };
        tokio::select! {
            answer = &mut first => {
                let Some(why) = failure(&answer) else { return (rejoin(answer), None) };
                if !self.budget.withdraw() {
                    return (rejoin(answer), None);
                }
                let other = start(ask_replica()).await;
                match failure(&other) {
                    None => (rejoin(other), replaced(why)),
                    Some(also) => {
                        let both = format!("{why}; its replica {replica_name}: {also}");
                        (futures::stream::iter([Err(Status::unavailable(both))]).boxed(), None)
                    }
                }
            }
            () = hedge => {
                if !self.budget.withdraw() {
                    return (rejoin(first.await), None);
                }
                let second = start(ask_replica());
                tokio::pin!(second);
                tokio::select! {
                    answer = &mut first => match failure(&answer) {
                        None => (rejoin(answer), None),
                        Some(why) => {
                            let other = second.await;
                            match failure(&other) {
                                None => (rejoin(other), replaced(why)),
                                Some(_) => (rejoin(answer), None),
                            }
                        }
                    },
                    other = &mut second => match failure(&other) {
                        None => {
                            let ms = self.after.unwrap_or_default().as_millis();
                            (rejoin(other), replaced(format!("{peer_name} had not answered within the {ms} ms hedge delay")))
                        }
                        Some(_) => (rejoin(first.await), None),
                    },
                }
            }
        }
    }

    /// The replica asked first in its peer's place (the peer behind the
    /// log): `replica`'s answer, or, if it fails before answering,
    /// `peer`'s, asked whatever the budget (it is the node the call was
    /// for, and a stale answer is better than none). Whether the replica
    /// answered.
    pub async fn open_replica_first<T: Send + 'static>(
        &self,
        replica: (&str, Chunks<T>),
        peer: (&str, impl FnOnce() -> Chunks<T>),
    ) -> (Chunks<T>, bool) {
        let ((replica_name, chunks), (peer_name, ask_peer)) = (replica, peer);
        self.budget.deposit();
        let first = start(chunks).await;
        let Some(why) = failure(&first) else {
            return (rejoin(first), true);
        };
        let other = start(ask_peer()).await;
        match failure(&other) {
            None => (rejoin(other), false),
            Some(also) => {
                let both =
                    format!("{peer_name}: {also}; its replica {replica_name}, asked first: {why}");
                (
                    futures::stream::iter([Err(Status::unavailable(both))]).boxed(),
                    false,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(v: u32) -> Chunks<u32> {
        futures::stream::iter([Ok(v), Ok(v + 1)]).boxed()
    }

    fn failing(why: &str) -> Chunks<u32> {
        futures::stream::iter([Err(Status::unavailable(why.to_string()))]).boxed()
    }

    fn slow(v: u32, after: Duration) -> Chunks<u32> {
        futures::stream::once(async move {
            tokio::time::sleep(after).await;
            Ok(v)
        })
        .boxed()
    }

    async fn all(c: Chunks<u32>) -> Vec<Result<u32, String>> {
        c.map(|r| r.map_err(|s| s.message().to_string()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_healthy_peer_answers_and_the_replica_is_never_asked() {
        let h = Hedge::new(None);
        let (c, replaced) = h
            .open(("p", answer(1)), ("r", || panic!("the replica was asked")))
            .await;
        assert_eq!(all(c).await, [Ok(1), Ok(2)]);
        assert_eq!(replaced, None);
    }

    #[tokio::test]
    async fn a_failed_peer_is_retried_on_its_replica() {
        let h = Hedge::new(None);
        let (c, replaced) = h
            .open(("p", failing("refused")), ("r", || answer(10)))
            .await;
        assert_eq!(all(c).await, [Ok(10), Ok(11)]);
        let replaced = replaced.unwrap();
        assert_eq!(replaced.by, "r");
        assert!(replaced.why.contains("refused"), "{}", replaced.why);
    }

    #[tokio::test]
    async fn when_both_fail_the_error_names_both() {
        let h = Hedge::new(None);
        let (c, replaced) = h
            .open(("p", failing("refused")), ("r", || failing("disk full")))
            .await;
        let got = all(c).await;
        assert_eq!(got.len(), 1);
        let e = got[0].clone().unwrap_err();
        assert!(e.contains("refused") && e.contains("its replica r") && e.contains("disk full"));
        assert_eq!(replaced, None);
    }

    #[tokio::test]
    async fn a_slow_peer_is_hedged_and_the_faster_replica_kept() {
        let h = Hedge::new(Some(Duration::from_millis(20)));
        let (c, replaced) = h
            .open(
                ("p", slow(1, Duration::from_secs(30))),
                ("r", || slow(10, Duration::from_millis(5))),
            )
            .await;
        assert_eq!(all(c).await, [Ok(10)]);
        assert!(replaced.unwrap().why.contains("20 ms hedge delay"));
    }

    #[tokio::test]
    async fn without_a_hedge_delay_a_slow_peer_is_waited_for() {
        let h = Hedge::new(None);
        let (c, replaced) = h
            .open(
                ("p", slow(1, Duration::from_millis(50))),
                ("r", || panic!("the replica was asked")),
            )
            .await;
        assert_eq!(all(c).await, [Ok(1)]);
        assert_eq!(replaced, None);
    }

    #[tokio::test]
    async fn a_replica_asked_first_falls_back_to_its_peer_whatever_the_budget() {
        let h = Hedge::new(None);
        // The budget spent on retries.
        for _ in 0..400 {
            let _ = h.open(("p", failing("refused")), ("r", || answer(1))).await;
        }
        let (c, replica_answered) = h
            .open_replica_first(("r", failing("down")), ("p", || answer(7)))
            .await;
        assert_eq!(all(c).await, [Ok(7), Ok(8)]);
        assert!(!replica_answered);
        let (c, replica_answered) = h
            .open_replica_first(("r", answer(3)), ("p", || panic!("the peer was asked")))
            .await;
        assert_eq!(all(c).await, [Ok(3), Ok(4)]);
        assert!(replica_answered);
        let (c, _) = h
            .open_replica_first(("r", failing("down")), ("p", || failing("refused")))
            .await;
        let e = all(c).await[0].clone().unwrap_err();
        assert!(
            e.contains("refused") && e.contains("its replica r") && e.contains("down"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_budget_caps_the_extra_calls() {
        // Ten a second over ten seconds is the reserve: 100 retries, plus
        // a fifth of the calls made; then the peer's error stands.
        let h = Hedge::new(None);
        let mut retried = 0;
        for _ in 0..300 {
            let (_, replaced) = h.open(("p", failing("refused")), ("r", || answer(1))).await;
            retried += usize::from(replaced.is_some());
        }
        assert!(retried < 300, "every call was retried");
        assert!(retried >= 100, "only {retried} retried");
    }
}
