//! The database layer on its own: migrations run by processes starting together.

use secondlook::{auth::users, db};

use crate::common::{Backend, fresh_database, test_settings};

crate::on_both_databases!(instances_starting_together_migrate_once);

async fn instances_starting_together_migrate_once(backend: Backend) {
    let Some((url, _dir)) = fresh_database(backend).await else {
        return;
    };
    let settings = test_settings(&url);
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(db::connect(&settings.database).await.expect("connect"));
    }
    let results = futures_util::future::join_all(pools.iter().map(db::migrate)).await;
    for result in results {
        result.expect("every instance's migration run succeeds");
    }
    // Each instance would now bootstrap the first admin; exactly one account results.
    let outcomes =
        futures_util::future::join_all(pools.iter().map(|pool| {
            users::bootstrap_admin(pool, "first@example.org", "First", Some("a long enough password".into()))
        }))
        .await;
    let created = outcomes.into_iter().map(|o| o.expect("bootstrap succeeds")).filter(Option::is_some).count();
    assert_eq!(created, 1);
    assert_eq!(users::count(&pools[0]).await.expect("count"), 1);
}
