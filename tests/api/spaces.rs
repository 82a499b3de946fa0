//! `GET /spaces` for people with many spaces: the `?q=` filter (any script, always escaped), the
//! `?sort=` order (a bad value is the default, never an error), the "N of M spaces" count and
//! readable times (an unreadable one shown as given, never a 500).

use crate::helpers::{TestApp, html_escape, text};
use fake_webex::{Endpoint, Fault};
use reqwest::StatusCode;
use serde_json::json;

const TITLE_CELL: &str = "<td role=\"cell\" class=\"room-title\" data-label=\"Title\">";

/// The titles the page lists, in order, as they appear in the HTML (escaped).
fn shown_titles(html: &str) -> Vec<&str> {
    html.split(TITLE_CELL)
        .skip(1)
        .map(|cell| &cell[..cell.find("</td>").unwrap()])
        .collect()
}

/// The text of the "N of M spaces" count.
fn count(html: &str) -> &str {
    let start = html.find("id=\"spaces-count\"").expect("a count");
    let rest = &html[start..];
    let rest = &rest[rest.find('>').unwrap() + 1..];
    &rest[..rest.find("</p>").unwrap()]
}

async fn page(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    let status = response.status();
    let body = text(response).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

#[crate::support::test]
async fn every_space_newest_first_with_a_count_and_readable_times() {
    let app = TestApp::spawn().await;
    app.login().await;
    let html = page(&app, "/spaces").await;
    let all: Vec<String> = app.fake.room_titles();
    assert_eq!(all.len(), 130);
    // The fake lists them newest first, which is the page's default order.
    let want: Vec<String> = all.iter().map(|t| html_escape(t)).collect();
    assert_eq!(shown_titles(&html), want);
    assert_eq!(count(&html), "130 of 130 spaces");
    assert!(
        html.contains("role=\"status\""),
        "the count is a live status"
    );
    assert!(html.contains("id=\"col-activity\" aria-sort=\"descending\""));
    // The newest room's time: readable in UTC, exact on hover, machine-readable as given.
    assert!(
        html.contains(
            "<time datetime=\"2026-03-02T09:15:12.481Z\" title=\"2 Mar 2026, 09:15:12 UTC\">\
             2 Mar 2026, 09:15 UTC</time>"
        ),
        "{html}"
    );
    assert!(!html.contains(">2026-03-02T09:15:12.481Z<"));
    // The form works without a script: a GET to this page.
    assert!(html.contains("method=\"get\" action=\"/spaces\""));
    assert!(html.contains("name=\"q\" value=\"\""));
}

#[crate::support::test]
async fn q_narrows_the_list_ignoring_case_in_any_script() {
    let app = TestApp::spawn().await;
    app.login().await;
    let all = app.fake.room_titles();
    for (q, needle) in [
        ("DESIGN", "design"),
        ("%E6%9D%B1%E4%BA%AC", "東京"),
        ("caf%C3%89", "café"),
        ("%C3%BCn%C3%AF", "ünï"),
        ("+grace+", "grace"),
    ] {
        let html = page(&app, &format!("/spaces?q={q}")).await;
        let want: Vec<String> = all
            .iter()
            .filter(|title| fold(title).contains(needle))
            .map(|t| html_escape(t))
            .collect();
        assert!(!want.is_empty(), "{needle} matches something");
        assert_eq!(shown_titles(&html), want, "{q}");
        assert_eq!(count(&html), format!("{} of 130 spaces", want.len()), "{q}");
    }
    let html = page(&app, "/spaces?q=%E6%9D%B1%E4%BA%AC").await;
    assert_eq!(shown_titles(&html), ["東京オフィス"]);
    assert!(html.contains("value=\"東京\""), "the box keeps the filter");
    // Nothing matches: the list is hidden and the page says so, with a way back.
    let html = page(&app, "/spaces?q=no+such+space").await;
    assert!(shown_titles(&html).is_empty());
    assert_eq!(count(&html), "0 of 130 spaces");
    assert!(html.contains("No space has “<span id=\"spaces-none-q\">no such space</span>”"));
    assert!(!html.contains("id=\"spaces-none\" hidden"));
}

#[crate::support::test]
async fn titles_and_the_query_stay_escaped() {
    let app = TestApp::spawn().await;
    app.login().await;
    let html = page(&app, "/spaces?q=%3Cscript%3E").await;
    assert_eq!(
        shown_titles(&html),
        ["&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; friends"]
    );
    assert!(!html.contains("<script>alert"));
    // A query with markup and quotes is shown as text, in the box and in the message.
    let html = page(&app, "/spaces?q=%22%3E%3Cimg+src%3Dx+onerror%3Dalert(1)%3E").await;
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("value=\"&#34;&#62;&#60;img src=x onerror=alert(1)&#62;\""));
    assert!(html.contains("<span id=\"spaces-none-q\">&#34;&#62;&#60;img src=x"));
    // Longer than 100 characters (and within the 4 KiB query limit): cut, not refused.
    let long = "é".repeat(500);
    let html = page(&app, &format!("/spaces?q={long}")).await;
    assert!(html.contains(&format!("value=\"{}\"", "é".repeat(100))));
    assert!(!html.contains(&"é".repeat(101)));
}

#[crate::support::test]
async fn sort_by_title_and_a_bad_sort_is_the_default() {
    let app = TestApp::spawn().await;
    app.login().await;
    let all = app.fake.room_titles();
    let mut by_title = all.clone();
    by_title.sort_by_key(|t| fold(t));
    let want: Vec<String> = by_title.iter().map(|t| html_escape(t)).collect();
    let html = page(&app, "/spaces?sort=title").await;
    assert_eq!(shown_titles(&html), want);
    assert!(html.contains("id=\"col-title\" aria-sort=\"ascending\""));
    assert!(html.contains("<option value=\"title\" selected>"));
    // With a filter too.
    let html = page(&app, "/spaces?sort=title&q=review").await;
    let reviews: Vec<&String> = want.iter().filter(|t| fold(t).contains("review")).collect();
    assert_eq!(shown_titles(&html), reviews);

    let newest_first: Vec<String> = all.iter().map(|t| html_escape(t)).collect();
    for bad in ["bogus", "", "TITLE", "title%00", "activity", "%FF"] {
        let html = page(&app, &format!("/spaces?sort={bad}")).await;
        assert_eq!(shown_titles(&html), newest_first, "sort={bad}");
        assert!(html.contains("<option value=\"activity\" selected>"));
    }
    // Repeated or odd parameters are no error either.
    for odd in ["?sort=title&sort=bogus", "?q=a&q=b&sort", "?%%%", "?q"] {
        page(&app, &format!("/spaces{odd}")).await;
    }
}

#[crate::support::test]
async fn a_time_that_does_not_parse_is_shown_as_given() {
    let app = TestApp::spawn().await;
    app.login().await;
    app.fake.inject(
        Endpoint::Rooms,
        Fault::Json(json!({ "items": [
            { "title": "Odd", "type": "group", "lastActivity": "last Tuesday <b>" },
            { "title": "Quiet", "type": "direct" },
            { "title": "Far", "type": "group", "lastActivity": "9999-12-31T23:59:59-23:59" },
            { "title": "Offset", "type": "group", "lastActivity": "2026-03-02T10:15:12+01:00" },
        ]})),
    );
    let html = page(&app, "/spaces").await;
    // The readable one first, then the rest in Webex's order.
    assert_eq!(shown_titles(&html), ["Offset", "Odd", "Quiet", "Far"]);
    assert!(html.contains("<span class=\"raw-time\">last Tuesday &#60;b&#62;</span>"));
    assert!(html.contains("<span class=\"raw-time\">9999-12-31T23:59:59-23:59</span>"));
    assert!(html.contains("title=\"2 Mar 2026, 09:15:12 UTC\">2 Mar 2026, 09:15 UTC</time>"));
    assert!(html.contains("<span class=\"muted\">none</span>"));
    assert_eq!(count(&html), "4 of 4 spaces");
}
