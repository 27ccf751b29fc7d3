//! Routing rules: what the channel knows when a conversation starts, classified into a queue.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::{PageId, QueueId, UserId};

/// The referral that started a thread (an m.me link's `ref`, an ad, a plugin): Messenger's
/// `referral` on the customer's first message or postback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ThreadReferral {
    /// `ref`: the parameter of the link, ad or plugin.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_: Option<String>,
    /// `source`: `SHORTLINK`, `ADS`, `CUSTOMER_CHAT_PLUGIN`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `ad_id`, for ads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_id: Option<String>,
}

impl ThreadReferral {
    /// A referral with its `ref`, `source` and `ad_id`.
    pub fn new(ref_: Option<String>, source: Option<String>, ad_id: Option<String>) -> Self {
        Self {
            ref_,
            source,
            ad_id,
        }
    }

    /// Whether it says nothing.
    pub fn is_empty(&self) -> bool {
        self.ref_.is_none() && self.source.is_none() && self.ad_id.is_none()
    }
}

/// What the channel knows of a conversation when it starts, for the rules to classify.
///
/// ```
/// use messenger_channel::ids::{PageId, UserId};
/// use messenger_channel::routing::{StartFacts, ThreadReferral};
///
/// let referral = ThreadReferral::new(Some("spring-sale".into()), Some("ADS".into()), Some("6045246247433".into()));
/// let (page, customer) = (PageId::from("104987654321098"), UserId::from("2401234"));
/// let facts = StartFacts::new(&page, &customer)
///     .first_text(Some("Where is my refund?"))
///     .referral(Some(&referral))
///     .locale(Some("fr_FR"));
/// assert_eq!(facts.first_text, Some("Where is my refund?"));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct StartFacts<'a> {
    /// The page written to.
    pub page: &'a str,
    /// The customer's PSID.
    pub customer: &'a str,
    /// The customer's locale (`fr_FR`), when known: the engine gives the host's
    /// ([`crate::engine::CustomerLocale`]).
    pub locale: Option<&'a str>,
    /// The referral that started the thread, if any.
    pub referral: Option<&'a ThreadReferral>,
    /// The text of the customer's first message (a postback's title), if any.
    pub first_text: Option<&'a str>,
}

impl<'a> StartFacts<'a> {
    /// Facts with a page and a customer, and nothing else known.
    pub fn new(page: &'a PageId<'_>, customer: &'a UserId<'_>) -> Self {
        Self {
            page: page.as_str(),
            customer: customer.as_str(),
            locale: None,
            referral: None,
            first_text: None,
        }
    }

    /// Sets the customer's locale.
    #[must_use]
    pub fn locale(mut self, locale: Option<&'a str>) -> Self {
        self.locale = locale;
        self
    }

    /// Sets the referral.
    #[must_use]
    pub fn referral(mut self, referral: Option<&'a ThreadReferral>) -> Self {
        self.referral = referral;
        self
    }

    /// Sets the first message's text.
    #[must_use]
    pub fn first_text(mut self, text: Option<&'a str>) -> Self {
        self.first_text = text;
        self
    }
}

/// A condition on a conversation's [`StartFacts`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Condition {
    /// The page is this one.
    Page(PageId<'static>),
    /// The customer's locale is this one, or of this language: `fr` holds for `fr_FR` and
    /// `fr-CA`, `fr_FR` only for `fr_FR` (letter case and `-`/`_` do not matter). An unknown
    /// locale holds for none.
    Locale(String),
    /// The referral's `ref` is this one (exactly).
    Referral(String),
    /// The referral's `ad_id` is this one.
    Ad(String),
    /// The referral's `source` is this one (letter case does not matter): `ADS`,
    /// `SHORTLINK`, …
    ReferralSource(String),
    /// The first message holds one of these words or phrases, as whole words, whatever the
    /// letter case: `refund` holds for "Refund please!", not for "refunded".
    Keywords(Vec<String>),
    /// Every one of these holds (none: always).
    All(Vec<Condition>),
}

impl Condition {
    /// Whether the condition holds for `facts`.
    pub fn holds(&self, facts: &StartFacts<'_>) -> bool {
        let referral = facts.referral;
        match self {
            Self::Page(page) => page.as_str() == facts.page,
            Self::Locale(wanted) => facts.locale.is_some_and(|l| locale_matches(wanted, l)),
            Self::Referral(r) => referral.and_then(|f| f.ref_.as_deref()) == Some(r.as_str()),
            Self::Ad(ad) => referral.and_then(|f| f.ad_id.as_deref()) == Some(ad.as_str()),
            Self::ReferralSource(source) => referral
                .and_then(|f| f.source.as_deref())
                .is_some_and(|s| s.eq_ignore_ascii_case(source)),
            Self::Keywords(words) => facts.first_text.is_some_and(|text| {
                let text = words_of(text);
                words.iter().any(|w| {
                    let w = words_of(w);
                    // A keyword with no word in it (" ") matches nothing.
                    w.len() > 1 && text.contains(&w)
                })
            }),
            Self::All(all) => all.iter().all(|c| c.holds(facts)),
        }
    }
}

/// `wanted` (`fr`, `fr_FR`) holds for `locale`: the same, or `locale`'s language.
fn locale_matches(wanted: &str, locale: &str) -> bool {
    let norm = |s: &str| s.replace('-', "_").to_ascii_lowercase();
    let (wanted, locale) = (norm(wanted), norm(locale));
    locale == wanted || locale.split('_').next() == Some(wanted.as_str())
}

/// The text's words, lowercase, each between spaces (` where is my refund `), so that a
/// phrase is found as whole words with `contains`.
fn words_of(text: &str) -> String {
    let mut out = String::from(" ");
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        out.extend(word.chars().flat_map(char::to_lowercase));
        out.push(' ');
    }
    out
}

/// A host's own classification, as a routing rule ([`Rule::Host`]): a CRM lookup, a
/// customer tier, a model. It runs while the conversation is created, so it must be quick
/// and must not block.
pub trait Classify: Send + Sync {
    /// The queue for a conversation, or `None` to let the next rule decide.
    fn classify(&self, facts: &StartFacts<'_>) -> Option<QueueId>;
}

impl<F> Classify for F
where
    F: Fn(&StartFacts<'_>) -> Option<QueueId> + Send + Sync,
{
    fn classify(&self, facts: &StartFacts<'_>) -> Option<QueueId> {
        self(facts)
    }
}

/// One routing rule.
#[derive(Clone)]
#[non_exhaustive]
pub enum Rule {
    /// When the condition holds, this queue.
    When {
        /// The condition.
        condition: Condition,
        /// The queue.
        queue: QueueId,
    },
    /// The host decides (or passes to the next rule).
    Host(Arc<dyn Classify>),
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::When { condition, queue } => f
                .debug_struct("When")
                .field("condition", condition)
                .field("queue", queue)
                .finish(),
            Self::Host(_) => f.write_str("Host(..)"),
        }
    }
}

impl Rule {
    /// The queue this rule gives `facts`, if it applies.
    pub fn classify(&self, facts: &StartFacts<'_>) -> Option<QueueId> {
        match self {
            Self::When { condition, queue } => condition.holds(facts).then(|| queue.clone()),
            Self::Host(host) => host.classify(facts),
        }
    }
}

/// Ordered routing rules with a fallback queue: the first rule that applies gives the
/// queue; when none does, the fallback.
///
/// ```
/// use messenger_channel::ids::{PageId, QueueId, UserId};
/// use messenger_channel::routing::{Condition, RoutingRules, StartFacts, ThreadReferral};
///
/// let rules = RoutingRules::new(QueueId::from("general"))
///     .when(Condition::Keywords(vec!["refund".into(), "money back".into()]), QueueId::from("billing"))
///     .when(Condition::Referral("vip".into()), QueueId::from("vip"))
///     .host(|facts: &StartFacts<'_>| (facts.customer == "42").then(|| QueueId::from("known")));
///
/// let (page, customer) = (PageId::from("p"), UserId::from("7"));
/// let facts = StartFacts::new(&page, &customer);
/// assert_eq!(rules.classify(&facts.first_text(Some("I want my money back!"))), "billing");
/// let vip = ThreadReferral::new(Some("vip".into()), None, None);
/// assert_eq!(rules.classify(&facts.referral(Some(&vip))), "vip");
/// assert_eq!(rules.classify(&facts.first_text(Some("hello"))), "general");
/// let known = UserId::from("42");
/// assert_eq!(rules.classify(&StartFacts::new(&page, &known)), "known");
/// ```
#[derive(Debug, Clone)]
pub struct RoutingRules {
    rules: Vec<Rule>,
    fallback: QueueId,
}

impl RoutingRules {
    /// No rules: everything goes to `fallback`.
    pub fn new(fallback: QueueId) -> Self {
        Self {
            rules: Vec::new(),
            fallback,
        }
    }

    /// Adds a rule after the others.
    #[must_use]
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds a rule: when `condition` holds, `queue`.
    #[must_use]
    pub fn when(self, condition: Condition, queue: QueueId) -> Self {
        self.rule(Rule::When { condition, queue })
    }

    /// Adds the host's classification as a rule.
    #[must_use]
    pub fn host(self, classify: impl Classify + 'static) -> Self {
        self.rule(Rule::Host(Arc::new(classify)))
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The fallback queue.
    pub fn fallback(&self) -> &QueueId {
        &self.fallback
    }

    /// The queue for a conversation: the first rule's that applies, else the fallback.
    pub fn classify(&self, facts: &StartFacts<'_>) -> QueueId {
        self.rules
            .iter()
            .find_map(|r| r.classify(facts))
            .unwrap_or_else(|| self.fallback.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> PageId<'static> {
        PageId::from("p1")
    }

    fn customer() -> UserId<'static> {
        UserId::from("u1")
    }

    #[allow(clippy::needless_pass_by_value)] // built in place by each assertion
    fn holds(condition: Condition, facts: StartFacts<'_>) -> bool {
        condition.holds(&facts)
    }

    #[test]
    fn page_condition() {
        let (p, c) = (page(), customer());
        let facts = StartFacts::new(&p, &c);
        assert!(holds(Condition::Page(PageId::from("p1")), facts));
        assert!(!holds(Condition::Page(PageId::from("p2")), facts));
    }

    #[test]
    fn locale_condition_matches_the_locale_or_its_language() {
        let (p, c) = (page(), customer());
        let facts = StartFacts::new(&p, &c);
        let fr = || Condition::Locale("fr".into());
        assert!(!holds(fr(), facts), "unknown locale");
        for l in ["fr", "fr_FR", "fr-CA", "FR_fr"] {
            assert!(holds(fr(), facts.locale(Some(l))), "{l}");
        }
        for l in ["en_US", "fy_NL", "f", ""] {
            assert!(!holds(fr(), facts.locale(Some(l))), "{l}");
        }
        let fr_fr = || Condition::Locale("fr-FR".into());
        assert!(holds(fr_fr(), facts.locale(Some("fr_FR"))));
        assert!(!holds(fr_fr(), facts.locale(Some("fr_CA"))));
        assert!(!holds(fr_fr(), facts.locale(Some("fr"))));
    }

    #[test]
    fn referral_ad_and_source_conditions() {
        let (p, c) = (page(), customer());
        let facts = StartFacts::new(&p, &c);
        let ad = ThreadReferral::new(Some("sale".into()), Some("ADS".into()), Some("123".into()));
        let link = ThreadReferral::new(Some("Sale".into()), Some("SHORTLINK".into()), None);
        let none = ThreadReferral::default();
        assert!(none.is_empty() && !ad.is_empty() && !link.is_empty());
        for one in [
            ThreadReferral::new(None, Some("ADS".into()), None),
            ThreadReferral::new(None, None, Some("1".into())),
            ThreadReferral::new(None, Some("ADS".into()), Some("1".into())),
        ] {
            assert!(!one.is_empty(), "{one:?}");
        }
        let r = || Condition::Referral("sale".into());
        assert!(holds(r(), facts.referral(Some(&ad))));
        assert!(!holds(r(), facts.referral(Some(&link))), "refs are exact");
        assert!(!holds(r(), facts.referral(Some(&none))));
        assert!(!holds(r(), facts));
        assert!(holds(
            Condition::Ad("123".into()),
            facts.referral(Some(&ad))
        ));
        assert!(!holds(
            Condition::Ad("124".into()),
            facts.referral(Some(&ad))
        ));
        assert!(!holds(
            Condition::Ad("123".into()),
            facts.referral(Some(&link))
        ));
        assert!(!holds(Condition::Ad("123".into()), facts));
        let ads = || Condition::ReferralSource("ads".into());
        assert!(holds(ads(), facts.referral(Some(&ad))));
        assert!(!holds(ads(), facts.referral(Some(&link))));
        assert!(!holds(ads(), facts.referral(Some(&none))));
        assert!(!holds(ads(), facts));
    }

    #[test]
    fn keyword_condition_finds_whole_words_and_phrases() {
        let (p, c) = (page(), customer());
        let facts = StartFacts::new(&p, &c);
        let k = || Condition::Keywords(vec!["refund".into(), "Money  back".into()]);
        assert!(!holds(k(), facts), "no text");
        for text in [
            "Refund please!",
            "my REFUND",
            "I want my money back.",
            "money-back",
        ] {
            assert!(holds(k(), facts.first_text(Some(text))), "{text}");
        }
        for text in ["refunded", "money is back", "", "hello"] {
            assert!(!holds(k(), facts.first_text(Some(text))), "{text}");
        }
        // Empty keywords match nothing.
        let empty = Condition::Keywords(vec![String::new(), " ! ".into()]);
        assert!(!holds(empty, facts.first_text(Some("anything at all"))));
        assert!(holds(
            Condition::Keywords(vec!["ÉTÉ".into()]),
            facts.first_text(Some("promo d'été"))
        ));
    }

    #[test]
    fn all_condition_needs_every_part() {
        let (p, c) = (page(), customer());
        let facts = StartFacts::new(&p, &c).first_text(Some("refund"));
        let page_and_word = |page: &str| {
            Condition::All(vec![
                Condition::Page(PageId::new(page.to_owned())),
                Condition::Keywords(vec!["refund".into()]),
            ])
        };
        assert!(holds(page_and_word("p1"), facts));
        assert!(!holds(page_and_word("p2"), facts));
        assert!(holds(Condition::All(vec![]), facts));
    }

    #[test]
    fn rules_apply_in_order_with_a_fallback() {
        let (p, c) = (page(), customer());
        let facts = StartFacts::new(&p, &c);
        let rules = RoutingRules::new(QueueId::from("general"))
            .host(|f: &StartFacts<'_>| (f.first_text == Some("host")).then(|| QueueId::from("h")))
            .when(Condition::Page(PageId::from("p1")), QueueId::from("page"))
            .when(
                Condition::Keywords(vec!["refund".into()]),
                QueueId::from("billing"),
            );
        assert_eq!(rules.rules().len(), 3);
        assert_eq!(rules.fallback(), &QueueId::from("general"));
        assert_eq!(rules.classify(&facts.first_text(Some("host"))), "h");
        // The page rule comes before the keyword rule.
        assert_eq!(rules.classify(&facts.first_text(Some("refund"))), "page");
        let other = PageId::from("p9");
        let elsewhere = StartFacts::new(&other, &c);
        assert_eq!(
            rules.classify(&elsewhere.first_text(Some("refund"))),
            "billing"
        );
        assert_eq!(rules.classify(&elsewhere), "general");
        assert!(format!("{:?}", rules.rules()).contains("Host(..)"));
        assert!(format!("{:?}", rules.rules()).contains("When"));
    }

    #[test]
    fn conditions_round_trip_through_serde() {
        let c = Condition::All(vec![
            Condition::Page(PageId::from("p")),
            Condition::Keywords(vec!["a".into()]),
        ]);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Condition>(&json).unwrap(), c);
        let r = ThreadReferral::new(Some("x".into()), None, None);
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"ref":"x"}"#);
    }
}
