//! The transaction coordinator on a one-shard broker holding `__transaction_state`
//! partition 0 (every transactional id's partition): unloading the partition answers its
//! waiting requests, stops its writes, and a load under way keeps nothing.

use std::rc::Rc;

use super::*;
use crate::txn::state_machine::InitResult;

use crate::partitions::test_shard::on_one_shard;

async fn start_coordinator() -> Rc<TxnCoordinator> {
    start(TransactionsConfig::default()).await;
    current()
}

/// InitProducerId for `id`, handing out producer id `producer_id` if a new one is needed;
/// `None` if the request was dropped unanswered.
async fn init(coordinator: &Rc<TxnCoordinator>, id: &str, producer_id: i64) -> Option<InitResult> {
    let answer = coordinator.with_machine(|machine, now| {
        machine.init_producer_id(id, 60_000, None, now, &mut || Ok(producer_id))
    });
    answer.get().await
}

fn state_log() -> runnel_engine::log::Log {
    state_partition(0)
        .expect("state partition open")
        .log()
        .clone()
}

#[test]
fn unloading_answers_waiters_writes_nothing_and_loads_again_from_the_log() {
    on_one_shard("txn-unload", &[STATE_TOPIC], || async {
        let coordinator = start_coordinator().await;
        coordinator.ensure_loaded(0).await.unwrap();
        let first = init(&coordinator, "tx", 7).await.unwrap();
        assert_eq!(
            (first.error, first.producer_id, first.producer_epoch),
            (ec::NONE, 7, 0)
        );
        let end = state_log().log_end_offset();

        // The next InitProducerId's store is queued; the partition goes before it runs.
        let waiting = coordinator.with_machine(|machine, now| {
            machine.init_producer_id("tx", 60_000, None, now, &mut || Ok(8))
        });
        partition_lost(0);
        let answered = waiting.get().await.unwrap();
        assert_eq!(answered.error, ec::NOT_COORDINATOR);
        assert!(!coordinator.is_loaded(0));
        assert!(
            coordinator.machine.borrow().get("tx").is_none(),
            "forgotten here"
        );
        rt::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(
            state_log().log_end_offset(),
            end,
            "the unloaded store wrote nothing"
        );

        // Leading again: the log brings the id back, at the epoch it had.
        coordinator.ensure_loaded(0).await.unwrap();
        let meta = coordinator
            .machine
            .borrow()
            .get("tx")
            .map(|m| (m.producer_id, m.producer_epoch));
        assert_eq!(meta, Some((7, 0)));
    });
}

#[test]
fn a_load_under_way_when_the_partition_is_unloaded_keeps_nothing() {
    on_one_shard("txn-unload-loading", &[STATE_TOPIC], || async {
        let coordinator = start_coordinator().await;
        coordinator.ensure_loaded(0).await.unwrap();
        init(&coordinator, "tx", 7).await.unwrap();
        coordinator.unload_partition(0);

        let loading = coordinator.clone();
        let load = rt::spawn_local(async move { loading.ensure_loaded(0).await });
        let mut under_way = false;
        for _ in 0..1000 {
            rt::yield_now().await;
            if coordinator.loading.borrow().contains(&0) {
                under_way = true;
                break;
            }
        }
        assert!(under_way, "the load started and waits for its reads");
        coordinator.unload_partition(0);
        assert_eq!(load.await, Err(ec::NOT_COORDINATOR));
        assert!(!coordinator.is_loaded(0));
        assert!(coordinator.machine.borrow().get("tx").is_none());
        assert!(coordinator.machine.borrow().loaded_partitions().is_empty());
    });
}

#[test]
fn a_follower_log_is_not_loaded_and_its_stores_fail_not_coordinator() {
    on_one_shard("txn-follower", &[STATE_TOPIC], || async {
        let coordinator = start_coordinator().await;
        coordinator.ensure_loaded(0).await.unwrap();
        state_log().set_follower(true);
        let refused = init(&coordinator, "tx", 7).await.unwrap();
        assert_eq!(refused.error, ec::NOT_COORDINATOR);
        partition_lost(0);
        assert_eq!(coordinator.ensure_loaded(0).await, Err(ec::NOT_COORDINATOR));
    });
}
