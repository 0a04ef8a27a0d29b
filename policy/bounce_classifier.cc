// policy/bounce_classifier.cc — the shipped bounce rules and the order in
// which rules are tried.
//
// Categories follow KumoMTA's classifier (CONTRACT.md). Where a reply could
// fit two categories the rules pick the one a bulk sender acts on:
// - A block of the sending IP or domain for its reputation (block lists,
//   Gmail's "unusual rate of unsolicited mail", Yahoo's [TSS04], Microsoft's
//   "rate limited due to IP reputation") is SpamBlock even when it is a 4xx
//   deferral: the fix is the sender's reputation, not patience.
// - A plain rate or connection limit with no reputation wording ("receiving
//   mail too quickly", "too many connections", "server busy") is
//   TransientFailure: the recipient and the sender are fine.
// - A message judged to be spam by its content is SpamContent; a spam filter
//   that does not say why is SpamRelated.
// - A reply code that is not 5xx never yields a suppressing category from
//   the shipped rules or the enhanced-code fallback: "450 4.1.1 unverified
//   address" is TransientFailure, not InvalidRecipient. The server said
//   "try again", and suppressing a real address costs more than one more
//   attempt. Operator rules are taken as written.
// - The enhanced code gives the subject even when its class disagrees with
//   the reply code ("550 4.2.2" is QuotaIssues); the reply code alone says
//   whether the failure is permanent.
// - Among the generic wordings, those that could suppress an address
//   (InvalidRecipient, InactiveMailbox, BadDomain) come after the block,
//   policy and sender ones, so that a reply about the sender or the
//   connection that happens to say "mailbox unavailable" does not cost a
//   good address.
//
// SECURITY: the text comes from remote servers; it is only searched, with
// patterns fixed here or by the operator, and only its first 1 KiB.
#include "policy/bounce_classifier.h"

#include <charconv>
#include <optional>
#include <utility>

namespace ringmail::policy {
namespace {

using conf::BounceCategory;
using conf::BounceRule;

// Replies may be up to 200 lines of 4 KiB; the category is always said in
// the first lines (the longest real ones, Gmail's, are under 500 octets).
// std::regex backtracks by recursion and costs about 8 us per octet over
// all the rules, so a bounded input bounds both the stack and the time a
// hostile reply can take.
constexpr size_t kMaxClassifiedText = 1024;

BounceRule text_rule(BounceCategory category, const char* pattern) {
  return BounceRule{conf::make_response_match(std::nullopt, "", std::string("(?i)") + pattern),
                    category};
}

BounceRule enhanced_text_rule(BounceCategory category, const char* enhanced, const char* pattern) {
  return BounceRule{
      conf::make_response_match(std::nullopt, enhanced, std::string("(?i)") + pattern), category};
}

std::vector<BounceRule> make_default_rules() {
  using enum BounceCategory;
  std::vector<BounceRule> rules;

  // --- Gmail: the help-page names (?p=...) end most of its replies.
  // Long-term over quota is how Gmail says a mailbox is abandoned.
  rules.push_back(text_rule(InactiveMailbox, "OverQuotaPerm|out of storage space and inactive"));
  rules.push_back(text_rule(
      QuotaIssues,
      "OverQuotaTemp|inbox is out of storage|account that you tried to reach is over quota"));
  rules.push_back(
      text_rule(InvalidRecipient, "NoSuchUser|account that you tried to reach does not exist"));
  rules.push_back(text_rule(InactiveMailbox,
                            "DisabledUser|account that you tried to reach is (disabled|inactive)"));
  // A per-recipient rate limit: the address is fine.
  rules.push_back(
      text_rule(TransientFailure, "receiving mail (too quickly|at a rate)|ReceivingRate"));
  rules.push_back(text_rule(SpamBlock,
                            "unsolicited mail originating from|UnsolicitedRateLimitError|"
                            "low reputation of the sending"));
  rules.push_back(text_rule(SpamContent,
                            "unsolicited mail containing|likely unsolicited mail|"
                            "UnsolicitedMessageError"));
  // Residential or dynamic ranges: who sends, not what.
  rules.push_back(text_rule(
      PolicyRelated, "not authorized to send email directly to our servers|NotAuthorizedError"));
  // Malware or malicious links ("?p=BlockedMessage").
  rules.push_back(text_rule(VirusRelated, "content presents a potential security issue"));

  // --- Microsoft (Outlook.com, Hotmail, Exchange Online, Exchange).
  // Old Hotmail codes: RP = rate limit, SC/OU = reputation, DY = dynamic IP.
  rules.push_back(text_rule(TransientFailure, "\\bRP-00\\d"));
  rules.push_back(text_rule(SpamBlock, "\\b(SC|OU)-00\\d"));
  rules.push_back(text_rule(PolicyRelated, "\\bDY-00\\d"));
  // Delivery restrictions of groups and mailboxes ("RESOLVER.RST.NotAuthorized").
  rules.push_back(text_rule(PolicyRelated, "RESOLVER\\.RST\\."));
  rules.push_back(text_rule(InvalidRecipient,
                            "RESOLVER\\.ADR\\.(Ex)?Recip(ient)?NotFound|"
                            "not found by SMTP address lookup"));
  rules.push_back(text_rule(BadDomain, "NonExistentDomain"));
  // Directory-based edge blocking: the tenant has no such recipient. Postfix
  // says the same words with 5.7.1 for an access map, which is policy.
  rules.push_back(
      enhanced_text_rule(InvalidRecipient, "5.4.1", "Recipient address rejected: Access denied"));
  rules.push_back(text_rule(TransientFailure, "Server busy"));

  // --- Yahoo and AOL: [TSS04] and friends are reputation deferrals,
  // [BLnn] block-list listings.
  rules.push_back(text_rule(SpamBlock, "\\[(TSS?\\d+|BL\\d+)\\]"));
  rules.push_back(text_rule(InvalidRecipient, "doesn't have an? \\S+ account"));
  rules.push_back(text_rule(InactiveMailbox, "\\(554\\.30\\)"));

  // --- Apple iCloud.
  rules.push_back(text_rule(InvalidRecipient, "unknown or illegal alias"));

  // --- GMX and web.de check the sender's domain and say "mailbox
  // unavailable" about it.
  rules.push_back(text_rule(InvalidSender, "invalid DNS MX or A/AAAA resource record"));

  // --- Proofpoint (also in front of iCloud and many companies).
  rules.push_back(
      text_rule(SpamBlock, "ipcheck\\.proofpoint\\.com|dnsbl-lookup|\\bBlocked - see https?://"));

  // --- Mimecast.
  rules.push_back(text_rule(PolicyRelated, "Anti-Spoofing|Envelope blocked|security policies"));

  // --- Barracuda: "(user@example.com:blocked)" is its spam filter.
  rules.push_back(text_rule(SpamRelated, ":blocked\\)"));

  // --- cPanel's Exim: says "blacklisted" but means a failed callout.
  rules.push_back(text_rule(InvalidRecipient, "account or domain may not exist"));

  // --- Common wording of filters and MTAs (Postfix, Exim, Sendmail,
  // Exchange, Orange, Mail.ru, amavis, rspamd).
  rules.push_back(text_rule(TransientFailure, "gr[ae]y ?list"));
  rules.push_back(text_rule(SpamContent, "spam or virus"));
  // Before the virus rule: block lists say "infected" about listed hosts.
  rules.push_back(text_rule(SpamContent,
                            "URIBL|SURBL|\\bURLs? .*listed|spam content|content .*"
                            "(identified|detected|classified) as spam|(message|mail|email) (was )?"
                            "(rejected|blocked|identified|detected|classified|considered) as spam|"
                            "rejected as spam|rejected due to spam|spam (message|detected)|"
                            "(looks|appears) (like|to be) spam|spam score|spamtext|"
                            "Mail content denied|high probability of spam|Reject, id=\\S+ - spam"));
  rules.push_back(text_rule(SpamBlock,
                            "blocked using|black ?list|block ?list|\\bRBL\\b|\\bDNSBL\\b|spamhaus|"
                            "spamcop|abuseat|sorbs|barracudacentral|reputation|"
                            "banned (sending IP|sender)|traffic not accepted|"
                            "\\b(is|was|been|are) (currently )?listed (in|on|at|by)\\b|"
                            "Blocked by ivmSIP"));
  rules.push_back(text_rule(VirusRelated, "virus|malware|infected|trojan|eicar"));
  rules.push_back(
      text_rule(ProhibitedAttachment, "attachment|BANNED:|banned file|file type|executable"));
  rules.push_back(text_rule(RelayDenied,
                            "relay(ing)? (access )?(denied|not (allowed|permitted)|prohibited|"
                            "refused)|(unable|not (allowed|permitted)) to relay|we do not relay|"
                            "isn't allowed to relay|relaying (is )?(denied|prohibited|"
                            "disallowed|not allowed)"));
  rules.push_back(text_rule(AuthenticationFailed,
                            "\\bDMARC\\b|\\bSPF\\b|Sender Policy Framework|\\bDKIM\\b|"
                            "unauthenticated|authentication (is )?required|"
                            "authentication (failed|checks?|level|requirements?)|"
                            "pass authentication|authentication information|must authenticate|"
                            "senders to authenticate"));
  rules.push_back(text_rule(BadConfiguration,
                            "PTR record|reverse DNS|\\brDNS\\b|reverse (lookup|hostname)|"
                            "cannot find your (reverse )?hostname|Helo command rejected|"
                            "(invalid|bad) (HELO|EHLO)|FCrDNS"));
  rules.push_back(text_rule(ProtocolErrors,
                            "STARTTLS|TLS (is )?required|requires? TLS|must use TLS|"
                            "encrypted connection required"));
  rules.push_back(text_rule(SpamRelated, "\\bspam\\b|junk ?mail|unsolicited"));
  rules.push_back(text_rule(PolicyRelated,
                            "polic(y|ies)|Administrative prohibition|not authorized|"
                            "Sender address rejected: Access denied"));
  rules.push_back(text_rule(InvalidSender,
                            "Sender address rejected|sender verify failed|Verification failed for|"
                            "Domain of sender address|sender domain (must exist|does not exist|"
                            "not found)|envelope sender domain must exist|(invalid|unknown|bad) "
                            "sender|Emetteur invalide|Sender Domain Resolve Fail"));
  rules.push_back(
      text_rule(TooManyRecipients, "too many (recipients|RCPT)|recipient limit|RecipLimit"));
  // The sender's own allowance at a smarthost, or the server's disk: not
  // the recipient's quota.
  rules.push_back(
      text_rule(TransientFailure, "sending (quota|limit)|insufficient system (storage|resources)"));
  rules.push_back(text_rule(QuotaIssues,
                            "quota|mailbox (is )?full|(inbox|mailbox|account) (is )?(over|out of) "
                            "(quota|storage|space)|exceeded storage|storage (allocation|space) "
                            "exceeded|mailbox size limit|insufficient (mailbox )?storage|"
                            "destinataire pleine|full mailbox"));
  rules.push_back(text_rule(ContentRelated,
                            "(message|mail|email) (is )?too (big|large|long)|message size|"
                            "size limit|size exceeds|exceed(s|ed)? .*size|too large"));
  rules.push_back(
      text_rule(InactiveMailbox,
                "(account|mailbox|user|address)( account)? (is |has been |was )?"
                "(disabled|deactivated|suspended|inactive|closed|expired|not active|"
                "not activated)|inactive (account|mailbox|user)|no longer (active|in use|"
                "valid|available)|has moved"));
  // x.7.x says "policy" even where the words say "mailbox unavailable".
  rules.push_back(enhanced_text_rule(PolicyRelated, "5.7", "mailbox unavailable"));
  rules.push_back(text_rule(InvalidRecipient,
                            "(user|recipient|mailbox|address|account) (is )?unknown|"
                            "unknown (user|recipient|mailbox|address|local part|alias)|"
                            "no such (user|mailbox|recipient|address|account|person)|"
                            "(user|recipient|mailbox|address|account|alias)( name)? (does not|"
                            "doesn't|did not) exist|(user|recipient|mailbox|address|account) not "
                            "found|(invalid|bad|nonexistent|non-existent) (recipient|mailbox|user|"
                            "address|account)|not a valid (user|mailbox|recipient|address)|"
                            "no mailbox here|mailbox (unavailable|not available)|"
                            "undeliverable address|RecipNotFound|RecipientNotFound|"
                            "Utilisateur inconnu|destinataire invalide|Not our Customer|"
                            "User not local"));
  rules.push_back(text_rule(BadDomain,
                            "domain not found|(domain|host) (name )?(does not|doesn't) exist|"
                            "non-?existent domain|NXDOMAIN|no such domain|unknown domain|"
                            "invalid domain|null MX|Host not found(?!, try again)|Host unknown"));
  rules.push_back(text_rule(DNSFailure,
                            "Name service error|DNS (query|lookup|resolution|server) (failed|"
                            "failure|error|timed out|timeout)|(temporary|transient) DNS|"
                            "DNS (timeout|failure|error)|SERVFAIL|(unable to|could not|cannot) "
                            "resolve|\\bno MX\\b"));
  rules.push_back(text_rule(RoutingErrors,
                            "mail loop|routing loop|loops back to myself|hop count|too many hops|"
                            "unrouteable|unroutable|unable to route|MailLoop"));
  rules.push_back(text_rule(MessageExpired,
                            "message expired|expired in queue|retry (timeout|time) (exceeded|"
                            "expired)|delivery time expired|too long in (the )?queue"));
  rules.push_back(text_rule(NoAnswerFromHost,
                            "connection refused|connect(ion)? timed out|timed out while connecting|"
                            "no route to host|network is unreachable|host (is )?unreachable|"
                            "not responding|(could not|unable to|cannot) connect"));
  rules.push_back(text_rule(BadConnection,
                            "lost connection|connection (reset|closed|dropped|lost|terminated)|"
                            "broken pipe|TLS handshake|\\bSSL\\b|unexpected (end|EOF|disconnect)|"
                            "timeout exceeded|timed out"));
  rules.push_back(
      text_rule(TransientFailure,
                "rate ?limit|too many (connections|concurrent|messages|sessions|mails?)|"
                "maximum number of connections|slow down|trop de connexions|"
                "try (again )?later|temporar(il)?y|resources temporarily|"
                "local problem"));
  rules.push_back(text_rule(ContentRelated,
                            "RFC ?(5322|2822|822)|From: header|Message-ID|header (is )?(missing|"
                            "invalid|malformed)|bare ?line ?feeds?|NUL characters|line too long|"
                            "malformed|content rejected|\\bMIME\\b"));
  return rules;
}

// The RFC 3463 subjects (and the later IANA registrations) by subject and
// detail; detail -1 stands for every other detail of the subject.
struct SubjectCategory {
  int subject;
  int detail;
  BounceCategory category;
};

constexpr SubjectCategory kSubjectCategories[] = {
    // x.1: addressing. x.1.0, x.1.5 and x.1.9 say nothing about the
    // address, so they are left to the reply code.
    {1, 1, BounceCategory::InvalidRecipient},
    {1, 2, BounceCategory::BadDomain},
    {1, 3, BounceCategory::InvalidRecipient},
    {1, 4, BounceCategory::InvalidRecipient},
    {1, 6, BounceCategory::InactiveMailbox},
    {1, 7, BounceCategory::InvalidSender},
    {1, 8, BounceCategory::InvalidSender},
    {1, 10, BounceCategory::BadDomain},  // RFC 7505 null MX
    // x.2: the mailbox.
    {2, 1, BounceCategory::InactiveMailbox},
    {2, 2, BounceCategory::QuotaIssues},
    {2, 3, BounceCategory::ContentRelated},  // message length over the limit
    {2, 4, BounceCategory::RoutingErrors},   // mailing list expansion
    // x.3: the receiving system. Its disk being full is its problem, not
    // the recipient's quota.
    {3, 1, BounceCategory::TransientFailure},
    {3, 2, BounceCategory::TransientFailure},
    {3, 3, BounceCategory::ProtocolErrors},
    {3, 4, BounceCategory::ContentRelated},  // message too big
    {3, 5, BounceCategory::BadConfiguration},
    // x.4: network and routing.
    {4, 1, BounceCategory::NoAnswerFromHost},
    {4, 2, BounceCategory::BadConnection},
    {4, 3, BounceCategory::DNSFailure},
    {4, 4, BounceCategory::RoutingErrors},
    {4, 5, BounceCategory::TransientFailure},  // congestion
    {4, 6, BounceCategory::RoutingErrors},     // loop
    {4, 7, BounceCategory::MessageExpired},
    {4, -1, BounceCategory::RoutingErrors},
    // x.5: the protocol.
    {5, 3, BounceCategory::TooManyRecipients},
    {5, -1, BounceCategory::ProtocolErrors},
    // x.6: content and conversion; 6.7-6.10 are SMTPUTF8 negotiation.
    {6, 7, BounceCategory::ProtocolErrors},
    {6, 8, BounceCategory::ProtocolErrors},
    {6, 9, BounceCategory::ProtocolErrors},
    {6, 10, BounceCategory::ProtocolErrors},
    {6, -1, BounceCategory::ContentRelated},
    // x.7: security and policy. x.7.0 is used for everything from
    // "authentication required" to "try again later", so it is policy; the
    // rules above pick out its authentication and rate-limit wordings.
    {7, 8, BounceCategory::AuthenticationFailed},   // bad credentials
    {7, 9, BounceCategory::AuthenticationFailed},   // mechanism too weak
    {7, 10, BounceCategory::AuthenticationFailed},  // encryption needed
    {7, 11, BounceCategory::AuthenticationFailed},  // encryption required for mechanism
    {7, 12, BounceCategory::AuthenticationFailed},  // password transition
    {7, 13, BounceCategory::AuthenticationFailed},  // our (AUTH) account disabled
    {7, 14, BounceCategory::AuthenticationFailed},  // trust relationship required
    {7, 16, BounceCategory::ContentRelated},        // too big for its priority
    {7, 17, BounceCategory::InactiveMailbox},       // RRVS: mailbox owner changed
    {7, 18, BounceCategory::BadDomain},             // RRVS: domain owner changed
    {7, 20, BounceCategory::AuthenticationFailed},  // no passing DKIM signature
    {7, 21, BounceCategory::AuthenticationFailed},
    {7, 22, BounceCategory::AuthenticationFailed},
    {7, 23, BounceCategory::AuthenticationFailed},  // SPF fail
    {7, 24, BounceCategory::AuthenticationFailed},  // SPF error
    {7, 25, BounceCategory::BadConfiguration},      // reverse DNS: the sender fixes its PTR
    {7, 26, BounceCategory::AuthenticationFailed},  // several checks failed (DMARC)
    {7, 27, BounceCategory::InvalidSender},         // sender domain has null MX
    {7, 28, BounceCategory::SpamBlock},             // mail flood
    {7, 29, BounceCategory::AuthenticationFailed},  // ARC
    {7, 30, BounceCategory::ProtocolErrors},        // REQUIRETLS needed
    {7, -1, BounceCategory::PolicyRelated},
};

struct EnhancedCode {
  int subject = 0;
  int detail = 0;
};

// "5.1.1" -> {1, 1}; nullopt for anything else, which then carries no
// subject.
std::optional<EnhancedCode> parse_enhanced(std::string_view text) {
  if (text.size() < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') {
    return std::nullopt;
  }
  EnhancedCode code;
  const char* begin = text.data() + 2;
  const char* end = text.data() + text.size();
  auto [after_subject, ec1] = std::from_chars(begin, end, code.subject);
  if (ec1 != std::errc() || after_subject == begin || after_subject - begin > 3 ||
      after_subject == end || *after_subject != '.') {
    return std::nullopt;
  }
  const char* detail_begin = after_subject + 1;
  auto [after_detail, ec2] = std::from_chars(detail_begin, end, code.detail);
  if (ec2 != std::errc() || after_detail == detail_begin || after_detail != end ||
      after_detail - detail_begin > 3) {
    return std::nullopt;
  }
  return code;
}

std::optional<BounceCategory> category_of_subject(std::string_view enhanced) {
  auto code = parse_enhanced(enhanced);
  if (!code) return std::nullopt;
  for (const auto& entry : kSubjectCategories) {
    if (entry.subject == code->subject && (entry.detail == code->detail || entry.detail == -1)) {
      return entry.category;
    }
  }
  return std::nullopt;
}

bool is_permanent(int code) { return code >= 500 && code < 600; }

// A reply the server called temporary is not proof that the address is bad.
BounceCategory soften_unless_permanent(int code, BounceCategory category) {
  if (!is_permanent(code) && is_hard_bounce(category)) return BounceCategory::TransientFailure;
  return category;
}

}  // namespace

BounceClassifier::BounceClassifier(std::vector<conf::BounceRule> operator_rules)
    : operator_rules_(std::move(operator_rules)) {
  // Compile the shipped rules now (config load), not on the first bounce.
  default_rules();
}

const std::vector<conf::BounceRule>& BounceClassifier::default_rules() {
  static const std::vector<conf::BounceRule> rules = make_default_rules();
  return rules;
}

conf::BounceCategory BounceClassifier::classify(int code, std::string_view enhanced,
                                                std::string_view text) const {
  text = text.substr(0, kMaxClassifiedText);
  for (const auto& rule : operator_rules_) {
    if (rule.match.matches(code, enhanced, text)) return rule.category;
  }
  for (const auto& rule : default_rules()) {
    if (rule.match.matches(code, enhanced, text)) {
      return soften_unless_permanent(code, rule.category);
    }
  }
  if (auto category = category_of_subject(enhanced)) {
    return soften_unless_permanent(code, *category);
  }
  // Code 0 is a local failure without a reply (timeout, lost connection):
  // transient like a 4xx.
  if (code == 0 || (code >= 400 && code < 500)) return BounceCategory::TransientFailure;
  return BounceCategory::Uncategorized;
}

bool is_hard_bounce(conf::BounceCategory category) {
  return category == conf::BounceCategory::InvalidRecipient ||
         category == conf::BounceCategory::BadDomain ||
         category == conf::BounceCategory::InactiveMailbox;
}

}  // namespace ringmail::policy
