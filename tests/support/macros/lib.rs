//! `#[support::test]`, the attribute every test of webex-oauth-axum carries instead of
//! `#[tokio::test]` or `#[test]`. It leaves the test's body as written (so a diff to a test
//! stays a diff to its lines) and runs it through the shared runner, `crate::support::run`:
//!
//! ```text
//! #[support::test(flavor = "multi_thread", timeout = Duration::from_secs(300))]
//! async fn name() { BODY }
//! // becomes
//! #[::tokio::test(flavor = "multi_thread")]
//! async fn name() {
//!     crate::support::run_async(Duration::from_secs(300), async move { BODY }).await
//! }
//! ```
//!
//! and a plain `fn name() { BODY }` becomes a `#[test]` calling
//! `crate::support::run_blocking(TIMEOUT, move || { BODY })`. `timeout` defaults to
//! `crate::support::TEST_TIMEOUT`; every other argument goes to `#[tokio::test]`. Only the
//! standard `proc_macro` API is used: the body is the item's last `{…}` group.

use proc_macro::{Delimiter, Group, Spacing, TokenStream, TokenTree};

#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args, item) {
        Ok(tokens) => tokens,
        Err(message) => format!("compile_error!({message:?});").parse().unwrap(),
    }
}

fn expand(args: TokenStream, item: TokenStream) -> Result<TokenStream, String> {
    let (timeout, tokio_args) = split_args(args)?;
    let mut tokens: Vec<TokenTree> = item.into_iter().collect();
    let body = match tokens.pop() {
        Some(TokenTree::Group(body)) if body.delimiter() == Delimiter::Brace => body,
        _ => return Err("#[support::test] goes on a function".into()),
    };
    let is_async = tokens
        .iter()
        .any(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "async"));
    let is_fn = tokens
        .iter()
        .any(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "fn"));
    if !is_fn {
        return Err("#[support::test] goes on a function".into());
    }
    let timeout = timeout.unwrap_or_else(|| "crate::support::TEST_TIMEOUT".parse().unwrap());
    let (attribute, call) = if is_async {
        (
            format!("#[::tokio::test({tokio_args})]"),
            "crate::support::run_async",
        )
    } else if tokio_args.is_empty() {
        (
            "#[::core::prelude::v1::test]".to_owned(),
            "crate::support::run_blocking",
        )
    } else {
        return Err(format!(
            "#[support::test({tokio_args})]: only an async fn takes #[tokio::test] arguments"
        ));
    };
    // CALL(TIMEOUT, async move BODY).await, or CALL(TIMEOUT, move || BODY)
    let mut call_args: TokenStream = timeout;
    call_args.extend(parse(", "));
    call_args.extend(parse(if is_async { "async move" } else { "move ||" }));
    call_args.extend([TokenTree::Group(body.clone())]);
    let mut wrapped = parse(call);
    wrapped.extend([TokenTree::Group(Group::new(
        Delimiter::Parenthesis,
        call_args,
    ))]);
    if is_async {
        wrapped.extend(parse(".await"));
    }
    let mut new_body = Group::new(Delimiter::Brace, wrapped);
    new_body.set_span(body.span());

    let mut out = parse(&attribute);
    out.extend(tokens);
    out.extend([TokenTree::Group(new_body)]);
    Ok(out)
}

fn parse(code: &str) -> TokenStream {
    code.parse().expect("valid tokens")
}

/// `timeout = EXPR` taken out of the arguments; the rest, as text, for `#[tokio::test]`.
fn split_args(args: TokenStream) -> Result<(Option<TokenStream>, String), String> {
    let mut timeout = None;
    let mut rest = Vec::new();
    let mut current: Vec<TokenTree> = Vec::new();
    let mut segments = Vec::new();
    for token in args {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ',' && p.spacing() == Spacing::Alone => {
                segments.push(std::mem::take(&mut current));
            }
            _ => current.push(token),
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    for segment in segments {
        let is_timeout = matches!(
            segment.as_slice(),
            [TokenTree::Ident(name), TokenTree::Punct(eq), ..]
                if name.to_string() == "timeout" && eq.as_char() == '='
        );
        if is_timeout {
            if segment.len() < 3 {
                return Err("#[support::test(timeout = …)] needs a Duration".into());
            }
            timeout = Some(segment[2..].iter().cloned().collect());
        } else {
            rest.push(segment.into_iter().collect::<TokenStream>().to_string());
        }
    }
    Ok((timeout, rest.join(", ")))
}
