//! Finding what made a group fail: when a handler fails on a group of
//! items (the requests of a batch, the rows of a file-scoring request),
//! the group runs again in halves, recursively: a half that succeeds is
//! done, a half that fails is split again, and an item that fails alone is
//! the guilty one. The batcher (`batch/isolate.rs`) and file scoring
//! (`score`) both bisect this way; each says what running a part means.
//!
//! Bounded two ways, so that a model that fails whatever it is given (not
//! an item's fault) fails the group quickly with the reason: the extra runs
//! are capped at [`budget`] for the group (six per doubling of its items:
//! enough to find two or three guilty ones), and when both halves of the
//! first split and one item of each fail as the whole did, the group fails
//! at once (five runs in all).

use std::future::Future;

use futures::future::BoxFuture;
use futures::FutureExt;

/// Extra runs a failed group of `items` may make.
pub fn budget(items: usize) -> usize {
    let doublings = usize::BITS - items.max(1).leading_zeros();
    6 * doublings as usize
}

/// How a part of a failed group went when run again.
pub enum Part<T> {
    /// Done with: succeeded, or no longer worth running.
    Done,
    /// The part failed, with the message; its items are not answered yet.
    Failed(Vec<T>, String),
}

/// What bisection needs of the group it splits.
pub trait Trial: Send {
    type Item: Send;
    /// Runs `items` (never empty) once.
    fn run(&mut self, items: Vec<Self::Item>) -> impl Future<Output = Part<Self::Item>> + Send;
    /// `items` failed alone: they are the guilty ones.
    fn guilty(&mut self, items: Vec<Self::Item>, message: &str);
    /// `items` fail with `message` without being found guilty: the budget
    /// ran out, or the model fails whatever it is given.
    fn fail(&mut self, items: Vec<Self::Item>, message: &str);
}

/// A trial, the runs it has left, and the whole group's message (to tell
/// a model that fails everything).
struct Search<'t, T: Trial> {
    trial: &'t mut T,
    left: usize,
    first: String,
}

/// Runs `items`, which failed together with `first`, again in halves down
/// to the items that fail alone; every item ends answered by the trial,
/// guilty, or failed.
///
/// When both halves fail as the whole did, either the model fails whatever
/// it is given or each half holds a guilty item: one item of each half is
/// run alone to tell. Both failing the same way too means the model (every
/// item fails with the reason, after five runs in all); else the halves
/// are halved again.
pub async fn bisect<T: Trial>(trial: &mut T, items: Vec<T::Item>, first: String) {
    let left = budget(items.len());
    let mut search = Search { trial, left, first };
    let s = &mut search;
    let (left, right) = halves(items);
    let Part::Failed(left, left_message) = once(s, left).await else {
        return split(s, right).await;
    };
    let Part::Failed(right, right_message) = once(s, right).await else {
        return halve(s, left, left_message).await;
    };
    if left_message != s.first || right_message != s.first {
        halve(s, left, left_message).await;
        return halve(s, right, right_message).await;
    }
    let (mut left, mut right) = (left, right);
    let a = left.remove(0);
    match once(s, vec![a]).await {
        Part::Done => {}
        Part::Failed(a, message) => match once(s, vec![right.remove(0)]).await {
            Part::Failed(b, other) if message == s.first && other == s.first => {
                let first = s.first.clone();
                for part in [a, b, left, right] {
                    if !part.is_empty() {
                        s.trial.fail(part, &first);
                    }
                }
                return;
            }
            Part::Failed(b, other) => {
                s.trial.guilty(a, &message);
                s.trial.guilty(b, &other);
            }
            Part::Done => s.trial.guilty(a, &message),
        },
    }
    split(s, left).await;
    split(s, right).await;
}

fn halves<T>(mut items: Vec<T>) -> (Vec<T>, Vec<T>) {
    let right = items.split_off(items.len() / 2);
    (items, right)
}

/// Runs `items` again: one that fails alone is guilty, a failure of
/// several is halved again.
fn split<'s, 't: 's, T: Trial>(s: &'s mut Search<'t, T>, items: Vec<T::Item>) -> BoxFuture<'s, ()> {
    async move {
        match once(s, items).await {
            Part::Done => {}
            Part::Failed(items, message) if items.len() == 1 => s.trial.guilty(items, &message),
            Part::Failed(items, message) => halve(s, items, message).await,
        }
    }
    .boxed()
}

/// Splits `items`, known to fail together with `message`, and runs each half.
fn halve<'s, 't: 's, T: Trial>(s: &'s mut Search<'t, T>, items: Vec<T::Item>, message: String) -> BoxFuture<'s, ()> {
    async move {
        if items.len() == 1 {
            // Known to fail, and alone: nothing left to split.
            return s.trial.guilty(items, &message);
        }
        let (left, right) = halves(items);
        split(s, left).await;
        split(s, right).await;
    }
    .boxed()
}

/// One run of `items` within the budget: past it, they fail with the
/// group's message.
async fn once<T: Trial>(s: &mut Search<'_, T>, items: Vec<T::Item>) -> Part<T::Item> {
    if items.is_empty() {
        return Part::Done;
    }
    if s.left == 0 {
        let first = s.first.clone();
        s.trial.fail(items, &first);
        return Part::Done;
    }
    s.left -= 1;
    s.trial.run(items).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items are numbers; a run fails naming its first number in `bad`
    /// (or always, with "broken", when `broken`).
    struct Numbers {
        bad: Vec<u32>,
        broken: bool,
        runs: usize,
        answered: Vec<u32>,
        guilty: Vec<(u32, String)>,
        failed: Vec<u32>,
    }

    impl Numbers {
        fn new(bad: &[u32], broken: bool) -> Self {
            Numbers { bad: bad.to_vec(), broken, runs: 0, answered: vec![], guilty: vec![], failed: vec![] }
        }
    }

    impl Trial for Numbers {
        type Item = u32;
        async fn run(&mut self, items: Vec<u32>) -> Part<u32> {
            self.runs += 1;
            if self.broken {
                return Part::Failed(items, "broken".into());
            }
            match items.iter().find(|i| self.bad.contains(i)) {
                Some(i) => {
                    let message = format!("{i} is bad");
                    Part::Failed(items, message)
                }
                None => {
                    self.answered.extend(items);
                    Part::Done
                }
            }
        }
        fn guilty(&mut self, items: Vec<u32>, message: &str) {
            self.guilty.extend(items.into_iter().map(|i| (i, message.to_string())));
        }
        fn fail(&mut self, items: Vec<u32>, _: &str) {
            self.failed.extend(items);
        }
    }

    fn run(trial: &mut Numbers, n: u32, first: &str) {
        futures::executor::block_on(bisect(trial, (0..n).collect(), first.into()));
    }

    #[test]
    fn finds_the_guilty_items_and_answers_the_rest() {
        let mut t = Numbers::new(&[3, 11], false);
        run(&mut t, 16, "3 is bad");
        let mut answered = t.answered.clone();
        answered.sort();
        assert_eq!(answered, (0..16).filter(|i| ![3, 11].contains(i)).collect::<Vec<_>>());
        assert_eq!(t.guilty, vec![(3, "3 is bad".to_string()), (11, "11 is bad".to_string())]);
        assert!(t.failed.is_empty());
        assert!(t.runs <= budget(16), "{} runs", t.runs);
    }

    #[test]
    fn a_model_that_fails_everything_fails_the_group_after_four_more_runs() {
        let mut t = Numbers::new(&[], true);
        run(&mut t, 8, "broken");
        assert_eq!(t.runs, 4);
        let mut failed = t.failed.clone();
        failed.sort();
        assert_eq!(failed, (0..8).collect::<Vec<_>>());
        assert!(t.guilty.is_empty());
    }

    #[test]
    fn past_the_budget_the_rest_fails_with_the_group_message() {
        let bad: Vec<u32> = (0..64).step_by(2).collect();
        let mut t = Numbers::new(&bad, false);
        run(&mut t, 64, "0 is bad");
        assert_eq!(t.runs, budget(64));
        assert_eq!(t.answered.len() + t.guilty.len() + t.failed.len(), 64, "every item ends somewhere");
        assert!(!t.failed.is_empty());
    }

    #[test]
    fn the_budget_grows_with_the_doublings_of_a_group() {
        assert_eq!(budget(2), 12);
        assert_eq!(budget(64), 42);
        assert_eq!(budget(1000), 60);
    }
}
