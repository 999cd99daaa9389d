//! The `secretfilter` stage's built-in rules: well-known token formats, written from what their
//! issuers document (fixed prefixes, lengths, alphabets). The ids are Gitleaks' rule ids, so
//! Alloy's `types` prefixes and its `<REDACTED-SECRET:rule-id>` text mean the same here.
//!
//! A pattern's group `s`, when it has one, is the secret (what is redacted); otherwise the whole
//! match is. A group is used where the format needs context around the secret (an assignment's
//! name) or a boundary character after it that must be kept.

/// One rule: an id and the pattern of its secrets.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    pub pattern: &'static str,
}

/// The rule that only runs with `include_generic`: values assigned to names such as `password`,
/// `api_key`, `secret` or `token` (prone to false positives).
pub const GENERIC: Rule = Rule {
    id: "generic-api-key",
    pattern: r#"(?i)(?-u:\b)[a-z0-9_.-]*?(?:api[_.-]?key|apikey|secret|passw(?:or)?d|pwd|token|access[_.-]?key|auth[_.-]?key|credentials?)["']?\s*(?:=>|:=|=|:)\s*["']?(?P<s>[^\s"'`,;&<>]{6,200})"#,
};

/// Every rule but [`GENERIC`], most specific first (on a tie in position and length, the earlier
/// rule names the secret).
pub const RULES: &[Rule] = &[
    // AWS access key ids: a 4-letter kind (AKIA long-term, ASIA temporary, ABIA/ACCA other
    // issuers) and 16 upper-case letters or digits.
    Rule {
        id: "aws-access-token",
        pattern: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
    },
    // GitHub: a kind prefix and 36 letters or digits; fine-grained tokens `github_pat_` and 82.
    Rule {
        id: "github-pat",
        pattern: r"(?-u:\b)ghp_[A-Za-z0-9]{36}(?-u:\b)",
    },
    Rule {
        id: "github-oauth",
        pattern: r"(?-u:\b)gho_[A-Za-z0-9]{36}(?-u:\b)",
    },
    Rule {
        id: "github-app-token",
        pattern: r"(?-u:\b)gh[us]_[A-Za-z0-9]{36}(?-u:\b)",
    },
    Rule {
        id: "github-refresh-token",
        pattern: r"(?-u:\b)ghr_[A-Za-z0-9]{36}(?-u:\b)",
    },
    Rule {
        id: "github-fine-grained-pat",
        pattern: r"(?-u:\b)github_pat_[A-Za-z0-9_]{82}(?-u:\b)",
    },
    // GitLab: personal, pipeline trigger, runner registration and deploy tokens.
    Rule {
        id: "gitlab-pat",
        pattern: r"(?-u:\b)glpat-[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*",
    },
    Rule {
        id: "gitlab-ptt",
        pattern: r"(?-u:\b)glptt-[0-9a-f]{40}(?-u:\b)",
    },
    Rule {
        id: "gitlab-rrt",
        pattern: r"(?-u:\b)GR1348941[A-Za-z0-9_-]{20,}",
    },
    Rule {
        id: "gitlab-deploy-token",
        pattern: r"(?-u:\b)gldt-[A-Za-z0-9_-]{20,}",
    },
    // Slack: bot, user and app-level tokens, and incoming webhook URLs.
    Rule {
        id: "slack-bot-token",
        pattern: r"(?-u:\b)xoxb-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{24,}(?-u:\b)",
    },
    Rule {
        id: "slack-user-token",
        pattern: r"(?-u:\b)xox[pe]-[0-9]{10,13}-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{28,34}(?-u:\b)",
    },
    Rule {
        id: "slack-app-token",
        pattern: r"(?i)(?-u:\b)xapp-[0-9]-[A-Z0-9]{9,}-[0-9]{10,}-[a-f0-9]{32,}(?-u:\b)",
    },
    Rule {
        id: "slack-webhook-url",
        pattern: r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,}",
    },
    // Google Cloud API keys: `AIza` and 35 characters of the URL-safe alphabet, and then none
    // (the character after it, kept, is not one of them).
    Rule {
        id: "gcp-api-key",
        pattern: r"(?-u:\b)(?P<s>AIza[A-Za-z0-9_-]{35})(?:[^A-Za-z0-9_-]|$)",
    },
    // Stripe secret and restricted keys (publishable `pk_` keys are public).
    Rule {
        id: "stripe-access-token",
        pattern: r"(?-u:\b)[sr]k_(?:test|live|prod)_[A-Za-z0-9]{10,99}(?-u:\b)",
    },
    // Grafana: API keys (base64 JSON starting `{"k":"`), Cloud tokens, service account tokens.
    Rule {
        id: "grafana-api-key",
        pattern: r"(?-u:\b)eyJrIjoi[A-Za-z0-9+/]{70,400}={0,3}",
    },
    Rule {
        id: "grafana-cloud-api-token",
        pattern: r"(?-u:\b)glc_[A-Za-z0-9+/]{32,400}={0,3}",
    },
    Rule {
        id: "grafana-service-account-token",
        pattern: r"(?-u:\b)glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}(?-u:\b)",
    },
    // PEM private keys, to their END line, or to the end of the line when it is not in it.
    Rule {
        id: "private-key",
        pattern: r"(?s)-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|$)",
    },
    // JSON Web Tokens: base64url header and claims (JSON objects: `eyJ`), then the signature.
    Rule {
        id: "jwt",
        pattern: r"(?-u:\b)eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",
    },
];
