//! The spaces page in a browser: typing narrows the list and updates the count, the sort
//! re-orders it in place, times read in words ("… ago") with the exact local time on hover;
//! and with JavaScript off, the same filter as a `?q=` form and readable UTC times.

use crate::browser::*;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use std::time::Duration;

/// The demo's GRANT flow in `b`, then `/spaces`.
async fn open_spaces(b: &Client, app: &Demo) {
    b.goto(&app.base).await.unwrap();
    click(b, "#grant").await;
    click(b, "#accept").await;
    wait_for_path(b, "/granted").await;
    b.goto(&format!("{}/spaces", app.base)).await.unwrap();
    wait_for(b, "#spaces-table").await;
}

/// The titles of the rows shown (not hidden), in order.
async fn visible_titles(b: &Client) -> Vec<String> {
    let titles = b
        .execute(
            "return Array.from(document.querySelectorAll('#spaces-table tbody tr'))\
               .filter(r => !r.hidden).map(r => r.cells[0].textContent)",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(titles).unwrap()
}

/// Polls `check` on the page (a script returning a value) until it returns `want`.
async fn wait_for_value(b: &Client, script: &str, want: Value) {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let got = b.execute(script, vec![]).await.unwrap();
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{script} is {got}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

#[crate::support::test]
async fn typing_narrows_the_list_and_times_read_in_words() {
    let app = demo().await;
    let mut driver = start_driver().await;
    let b = browser(&mut driver, "spaces").await;
    open_spaces(&b, &app).await;
    let all = app.fake.room_titles();
    assert_eq!(visible_titles(&b).await, all);
    let count = "return document.getElementById('spaces-count').textContent";
    wait_for_value(&b, count, json!("130 of 130 spaces")).await;

    // Times: words in the reader's language, the exact local time on hover.
    wait_for_text(&b, ".room-activity time", "ago").await;
    let time = wait_for(&b, ".room-activity time").await;
    let words = time.text().await.unwrap();
    assert!(!words.contains("UTC"), "{words}");
    let exact = time.attr("title").await.unwrap().unwrap();
    assert!(exact.contains("2026"), "{exact}");
    assert_ne!(
        exact, "2 Mar 2026, 09:15:12 UTC",
        "rewritten in the local zone"
    );

    // Typing narrows the list and the count follows; the address keeps the filter.
    let input = wait_for(&b, "#spaces-q").await;
    input.send_keys("REVIEW").await.unwrap();
    let reviews: Vec<String> = all
        .iter()
        .filter(|t| fold(t).contains("review"))
        .cloned()
        .collect();
    assert!(reviews.len() > 1 && reviews.len() < 130);
    let want = format!("{} of 130 spaces", reviews.len());
    wait_for_value(&b, count, json!(want)).await;
    assert_eq!(visible_titles(&b).await, reviews);
    assert!(
        b.current_url()
            .await
            .unwrap()
            .query()
            .is_some_and(|q| q.contains("q=REVIEW")),
        "the URL keeps the filter"
    );
    shot(&b, "11-spaces-filter").await;

    // Sorting by title re-orders in place (no reload: the typed filter stays).
    let select = wait_for(&b, "#spaces-sort").await;
    select.select_by_value("title").await.unwrap();
    let mut by_title = reviews.clone();
    by_title.sort_by_key(|t| fold(t));
    let first = "return document.querySelector('#spaces-table tbody tr:not([hidden])')\
                 .cells[0].textContent";
    wait_for_value(&b, first, json!(by_title[0])).await;
    assert_eq!(visible_titles(&b).await, by_title);
    let sorted = b
        .execute(
            "return document.getElementById('col-title').getAttribute('aria-sort')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(sorted, json!("ascending"));

    // Nothing matches: the table gives way to a message.
    input.send_keys("zzz").await.unwrap();
    wait_for_value(&b, count, json!("0 of 130 spaces")).await;
    let none = b.find(Locator::Id("spaces-none")).await.unwrap();
    assert!(none.is_displayed().await.unwrap());
    b.close().await.unwrap();
}

#[crate::support::test]
async fn without_javascript_the_filter_is_a_form_and_times_are_utc() {
    let app = demo().await;
    let mut driver = start_driver().await;
    let b = browser_without_js(&mut driver, "spaces-nojs").await;
    open_spaces(&b, &app).await;
    // No script ran: the server's readable time is what shows.
    let time = wait_for(&b, ".room-activity time").await;
    assert_eq!(time.text().await.unwrap(), "2 Mar 2026, 09:15 UTC");
    let ran = b
        .find(Locator::Css(
            ".room-activity time[title='2 Mar 2026, 09:15:12 UTC']",
        ))
        .await;
    assert!(ran.is_ok(), "the exact time is the server's");

    let input = wait_for(&b, "#spaces-q").await;
    input.send_keys("grace").await.unwrap();
    click(&b, "#spaces-apply").await;
    wait_for_text(&b, "#spaces-count", "1 of 130 spaces").await;
    let url = b.current_url().await.unwrap();
    assert_eq!(url.path(), "/spaces");
    assert!(url.query().is_some_and(|q| q.contains("q=grace")), "{url}");
    let rows = b
        .find_all(Locator::Css("#spaces-table tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = rows[0].text().await.unwrap();
    assert!(row.starts_with("Grace Hopper"), "{row}");
    shot(&b, "12-spaces-no-js").await;
    b.close().await.unwrap();
}
