// tests/policy/bounce_classifier_test.cc — real replies of large mailbox
// providers, filters and common MTAs, and the category each one lands in;
// operator rules before shipped ones; the fallbacks.
#include "policy/bounce_classifier.h"

#include <gtest/gtest.h>

#include <string>

#include "conf/config_policy.h"

namespace ringmail::policy {
namespace {

using conf::BounceCategory;
using enum conf::BounceCategory;

std::string name(BounceCategory category) {
  return std::string(conf::bounce_category_name(category));
}

struct Case {
  int code;
  const char* enhanced;
  const char* text;  // as the client session joins it: without code and enhanced code
  BounceCategory expected;
};

// What the servers send, written from their documentation and bounce logs.
const Case kCorpus[] = {
    // Gmail
    {550, "5.1.1",
     "The email account that you tried to reach does not exist. Please try double-checking the "
     "recipient's email address for typos or unnecessary spaces. Learn more at "
     "https://support.google.com/mail/?p=NoSuchUser",
     InvalidRecipient},
    {550, "5.2.1",
     "The email account that you tried to reach is disabled. Learn more at "
     "https://support.google.com/mail/?p=DisabledUser",
     InactiveMailbox},
    {452, "4.2.2",
     "The recipient's inbox is out of storage space. Please direct the recipient to "
     "https://support.google.com/mail/?p=OverQuotaTemp",
     QuotaIssues},
    {552, "5.2.2",
     "The recipient's inbox is out of storage space and inactive. Please direct the recipient to "
     "https://support.google.com/mail/?p=OverQuotaPerm",
     InactiveMailbox},
    {450, "4.2.1",
     "The user you are trying to contact is receiving mail too quickly. Please resend your "
     "message at a later time. If the user is able to receive mail at that time, your message "
     "will be delivered. For more information, please visit "
     "https://support.google.com/mail/?p=ReceivingRate",
     TransientFailure},
    {421, "4.7.28",
     "[192.0.2.10 15] Our system has detected an unusual rate of unsolicited mail originating "
     "from your IP address. To protect our users from spam, mail sent from your IP address has "
     "been temporarily rate limited. Please visit "
     "https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email "
     "Senders Guidelines.",
     SpamBlock},
    {421, "4.7.0",
     "[192.0.2.10 15] Our system has detected an unusual rate of unsolicited mail originating "
     "from your IP address. To protect our users from spam, mail sent from your IP address has "
     "been temporarily rate limited.",
     SpamBlock},
    {550, "5.7.1",
     "[192.0.2.10 12] Our system has detected that this message is likely unsolicited mail. To "
     "reduce the amount of spam sent to Gmail, this message has been blocked. Please visit "
     "https://support.google.com/mail/?p=UnsolicitedMessageError to review our Bulk Email "
     "Senders Guidelines.",
     SpamContent},
    {550, "5.7.1",
     "[192.0.2.10] Gmail has detected that this message is likely suspicious due to the very low "
     "reputation of the sending domain. To best protect our users from spam, the message has "
     "been blocked.",
     SpamBlock},
    {550, "5.7.26",
     "This mail is unauthenticated, which poses a security risk to the sender and Gmail users, "
     "and has been blocked. The sender must authenticate with at least one of SPF or DKIM. For "
     "this message, DKIM checks did not pass and SPF check for [example.com] did not pass with "
     "ip: [192.0.2.10].",
     AuthenticationFailed},
    {550, "5.7.26",
     "Unauthenticated email from example.com is not accepted due to domain's DMARC policy. "
     "Please contact the administrator of example.com domain if this was a legitimate mail. To "
     "learn about the DMARC initiative, go to https://support.google.com/mail/?p=DmarcRejection",
     AuthenticationFailed},
    {421, "4.7.0",
     "[192.0.2.10] This message does not have authentication information or fails to pass "
     "authentication checks (SPF or DKIM). To best protect our users from spam, the message has "
     "been blocked.",
     AuthenticationFailed},
    {550, "5.7.25",
     "[192.0.2.10] The IP address sending this message does not have a PTR record setup, or the "
     "corresponding forward DNS entry does not point to the sending IP. As a policy, Gmail does "
     "not accept messages from IPs with missing PTR records.",
     BadConfiguration},
    {550, "5.7.1",
     "[192.0.2.10] The IP you're using to send mail is not authorized to send email directly to "
     "our servers. Please use the SMTP relay at your service provider instead.",
     PolicyRelated},
    {452, "4.5.3",
     "Your message has too many recipients. For more information regarding Google's sending "
     "limits, visit https://support.google.com/mail/?p=TooManyRecipientsError",
     TooManyRecipients},
    {552, "5.3.4",
     "Your message exceeded Google's message size limits. Please visit "
     "https://support.google.com/mail/?p=MaxSizeError to view our size guidelines.",
     ContentRelated},
    {552, "5.7.0",
     "This message was blocked because its content presents a potential security issue. Please "
     "visit https://support.google.com/mail/?p=BlockedMessage to review our message content and "
     "attachment content guidelines.",
     VirusRelated},
    {552, "5.7.0",
     "Our system detected an illegal attachment on your message. Please visit "
     "http://mail.google.com/support/bin/answer.py?answer=6590 to review our attachment "
     "guidelines.",
     ProhibitedAttachment},
    {550, "5.7.1",
     "[192.0.2.10] Messages missing a valid address in From: header, or having no From: header, "
     "are not accepted.",
     ContentRelated},
    {421, "4.7.0", "Try again later, closing connection. (EHLO)", TransientFailure},

    // Microsoft: Outlook.com, Hotmail, Exchange Online, Exchange
    {550, "5.5.0",
     "Requested action not taken: mailbox unavailable (S2017062302). "
     "[AM4PEPF00025F97.EURPRD83.prod.outlook.com]",
     InvalidRecipient},
    {550, "5.1.10",
     "RESOLVER.ADR.RecipientNotFound; Recipient user@example.com not found by SMTP address lookup",
     InvalidRecipient},
    {550, "5.4.1",
     "Recipient address rejected: Access denied. For more information see "
     "https://aka.ms/EXOSmtpErrors AS(201806281) [DB5PEPF00014B8E.eurprd02.prod.outlook.com]",
     InvalidRecipient},
    {550, "5.7.1",
     "Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your Internet "
     "service provider since part of their network is on our block list (S3150). You can also "
     "refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.",
     SpamBlock},
    {550, "5.7.606",
     "Access denied, banned sending IP [192.0.2.10]. To request removal from this list please "
     "visit https://sender.office.com/ and follow the directions.",
     SpamBlock},
    {421, "4.7.650",
     "The mail server [192.0.2.10] has been temporarily rate limited due to IP reputation. For "
     "e-mail delivery information, see https://postmaster.live.com (S775)",
     SpamBlock},
    {451, "4.7.500", "Server busy. Please try again later from [192.0.2.10]. (S77714)",
     TransientFailure},
    {550, "5.7.509",
     "Access denied, sending domain example.com does not pass DMARC verification and has a DMARC "
     "policy of reject.",
     AuthenticationFailed},
    {550, "5.7.515",
     "Access denied, sending domain [example.com] doesn't meet the required authentication "
     "level. The sender's domain in the 5322.From address doesn't meet the authentication "
     "requirements defined for the sender.",
     AuthenticationFailed},
    {554, "5.2.2",
     "mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException."
     "MapiExceptionShutoffQuotaExceeded; Failed to process message due to a permanent exception",
     QuotaIssues},
    {554, "5.4.14", "Hop count exceeded - possible mail loop ATTR34", RoutingErrors},
    {550, "5.7.64", "TenantAttribution; Relay Access Denied", RelayDenied},
    {550, "5.7.133",
     "RESOLVER.RST.SenderNotAuthenticatedForGroup; authentication required; Delivery restriction "
     "check failed because the sender was not authenticated when sending to this group",
     PolicyRelated},
    {550, "5.4.4", "SMTPSEND.DNS.NonExistentDomain; nonexistent domain", BadDomain},
    {550, "5.1.1", "RESOLVER.ADR.RecipNotFound; not found", InvalidRecipient},
    {421, "",
     "RP-001 (BAY004-MC1F26) Unfortunately, some messages from 192.0.2.10 weren't sent. Please "
     "try again. We have limits for how many messages can be sent per hour and per day.",
     TransientFailure},
    {550, "",
     "SC-001 (BAY004-MC3F33) Unfortunately, messages from 192.0.2.10 weren't sent. Please contact "
     "your Internet service provider. You can tell them that Hotmail does not relay "
     "dynamically-assigned IP ranges.",
     SpamBlock},
    {452, "4.3.1", "Insufficient system resources", TransientFailure},

    // Yahoo and AOL
    {554, "",
     "delivery error: dd This user doesn't have a yahoo.com account (user@yahoo.com) [0] - "
     "mta1040.mail.ne1.yahoo.com",
     InvalidRecipient},
    {554, "",
     "delivery error: dd Sorry your message to user@yahoo.com cannot be delivered. This mailbox "
     "is disabled (554.30). - mta1212.mail.bf1.yahoo.com",
     InactiveMailbox},
    {552, "", "1 Requested mail action aborted, mailbox not found", InvalidRecipient},
    {421, "4.7.0",
     "[TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     SpamBlock},
    {553, "5.7.2",
     "[TSS09] All messages from 192.0.2.10 will be permanently deferred; Retrying will NOT "
     "succeed. See https://postmaster.yahooinc.com/error-codes",
     SpamBlock},
    {553, "5.7.1",
     "[BL21] Connections will not be accepted from 192.0.2.10, because the ip is in Spamhaus's "
     "list; see https://postmaster.yahooinc.com/error-codes",
     SpamBlock},
    {554, "5.7.9",
     "Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
     PolicyRelated},
    {550, "5.7.9",
     "This mail has been blocked because the sender is unauthenticated. Yahoo requires all "
     "senders to authenticate with either SPF or DKIM.",
     AuthenticationFailed},

    // Apple iCloud
    {550, "5.1.1", "<user@icloud.com>: user does not exist", InvalidRecipient},
    {550, "5.1.1", "unknown or illegal alias: user@icloud.com", InvalidRecipient},
    {552, "5.2.2", "<user@icloud.com>: user is over quota", QuotaIssues},
    {554, "5.7.1",
     "[CS01] Message rejected due to local policy. Please visit "
     "https://support.apple.com/en-us/HT204137",
     PolicyRelated},

    // GMX and web.de
    {550, "", "Requested action not taken: mailbox unavailable", InvalidRecipient},
    {550, "",
     "Requested action not taken: mailbox unavailable invalid DNS MX or A/AAAA resource record",
     InvalidSender},
    {554, "",
     "gmx.net (mxgmx115) Nemesis ESMTP Service not available No SMTP service IP address is block "
     "listed. For explanation visit https://www.gmx.net/mail/senderguidelines?c=bl",
     SpamBlock},
    {554, "",
     "Transaction failed Reject due to policy restrictions. For explanation visit "
     "https://web.de/email/senderguidelines?ip=192.0.2.10&c=hi",
     PolicyRelated},
    {552, "", "Requested mail action aborted: exceeded storage allocation", QuotaIssues},

    // Orange
    {550, "5.1.1", "Adresse d au moins un destinataire invalide. Invalid recipient. OFR_416 [416]",
     InvalidRecipient},
    {552, "5.1.1", "Boite du destinataire pleine. Recipient mailbox full. OFR_417 [417]",
     QuotaIssues},
    {421, "",
     "mwinf5c05 ME Trop de connexions, veuillez verifier votre configuration. Too many "
     "connections, slow down. OFR005_104 [104]",
     TransientFailure},
    {501, "5.0.2", "Mail rejected. DMARC check failed.", AuthenticationFailed},
    {550, "5.0.1", "Emetteur invalide. Invalid Sender. Your domain has been blacklisted.",
     SpamBlock},

    // Mail.ru
    {550, "",
     "Message was not accepted -- invalid mailbox.  Local mailbox user@mail.ru is unavailable: "
     "user not found",
     InvalidRecipient},
    {550, "",
     "Message was not accepted -- invalid mailbox.  Local mailbox user@mail.ru is unavailable: "
     "account is disabled",
     InactiveMailbox},
    {550, "", "spam message rejected. Please visit http://help.mail.ru/notspam-support/id?c=abc",
     SpamContent},
    {451, "", "Ratelimit exceeded for mailbox user@mail.ru. Try again later.", TransientFailure},

    // Proofpoint, Mimecast, Barracuda
    {554, "5.7.0", "Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.10", SpamBlock},
    {550, "", "Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550 [a1b2c3.uk53]",
     InvalidRecipient},
    {550, "",
     "Rejected by header based Anti-Spoofing policy: user@example.com - "
     "https://community.mimecast.com/docs/DOC-1369#550",
     PolicyRelated},
    {550, "", "Envelope blocked - User Entry - https://community.mimecast.com/docs/DOC-1369#550",
     PolicyRelated},
    {451, "", "Open relay not allowed - https://community.mimecast.com/docs/DOC-1369#451",
     RelayDenied},
    {451, "", "IP temporarily blacklisted - https://community.mimecast.com/docs/DOC-1369#451",
     SpamBlock},
    {554, "",
     "Service unavailable; Client host [192.0.2.10] blocked using Barracuda Reputation; "
     "http://www.barracudanetworks.com/reputation/?r=1&ip=192.0.2.10",
     SpamBlock},
    {550, "", "permanent failure for one or more recipients (user@example.com:blocked)",
     SpamRelated},

    // Spamhaus and other DNS block lists, as Postfix and Exim report them
    {554, "5.7.1",
     "Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/192.0.2.10",
     SpamBlock},
    {550, "5.7.1",
     "Service unavailable, Client host [192.0.2.10] blocked using Spamhaus. To request removal "
     "from this list see https://www.spamhaus.org/query/ip/192.0.2.10 AS(1450)",
     SpamBlock},
    {550, "", "rejected because 192.0.2.10 is in a black list at zen.spamhaus.org", SpamBlock},
    {550, "5.7.1", "Email rejected because 192.0.2.10 is listed by bl.spamcop.net", SpamBlock},
    {550, "5.7.1",
     "Service unavailable; Client host [192.0.2.10] blocked using xbl.spamhaus.org; it appears "
     "to be infected with spam sending trojans",
     SpamBlock},

    // Postfix
    {550, "5.1.1",
     "<user@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
     InvalidRecipient},
    {550, "5.1.1",
     "<user@example.com>: Recipient address rejected: User unknown in local recipient table",
     InvalidRecipient},
    {554, "5.7.1", "<user@example.com>: Relay access denied", RelayDenied},
    {450, "4.1.1",
     "<user@example.com>: Recipient address rejected: unverified address: host "
     "mx.example.com[192.0.2.20] said: 550 5.1.1 User unknown",
     TransientFailure},
    {550, "5.1.2", "<user@nonexistent.example>: Recipient address rejected: Domain not found",
     BadDomain},
    {450, "4.1.2", "<user@example.com>: Recipient address rejected: Domain not found",
     TransientFailure},
    {553, "5.1.8", "<bounce@example.com>: Sender address rejected: Domain not found",
     InvalidSender},
    {550, "5.1.0",
     "<bounce@example.com>: Sender address rejected: undeliverable address: host "
     "mx.example.com[192.0.2.20] said: 550 5.1.1 User unknown",
     InvalidSender},
    {504, "5.5.2", "<localhost>: Helo command rejected: need fully-qualified hostname",
     BadConfiguration},
    {450, "4.7.1", "Client host rejected: cannot find your hostname, [192.0.2.10]",
     BadConfiguration},
    {450, "4.2.0",
     "<user@example.com>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.com.html",
     TransientFailure},
    {552, "5.3.4", "Message size exceeds fixed limit", ContentRelated},
    {452, "4.3.1", "Insufficient system storage", TransientFailure},
    {421, "4.4.2", "mx.example.com Error: timeout exceeded", BadConnection},
    {550, "5.7.1", "<user@example.com>: Recipient address rejected: Access denied", PolicyRelated},
    {554, "5.7.1", "Spam message rejected", SpamContent},
    {550, "5.7.23", "The message was rejected because of Sender Policy Framework violation",
     AuthenticationFailed},

    // Content filters behind Postfix and Exim
    {554, "5.7.0", "Reject, id=12345-01 - spam", SpamContent},
    {554, "5.7.0", "Reject, id=12345-02 - INFECTED: Eicar-Test-Signature", VirusRelated},
    {554, "5.7.0",
     "Reject, id=12345-03 - BANNED: P=p003,L=1,M=multipart/mixed | "
     "P=p002,L=1/2,M=application/x-msdownload,T=exe,N=invoice.exe",
     ProhibitedAttachment},
    {554, "5.7.1", "Message rejected due to virus", VirusRelated},
    {550, "5.7.0", "Message has been rejected due to spam or virus classification", SpamContent},

    // Exim (and cPanel)
    {550, "", "Unrouteable address", RoutingErrors},
    {550, "",
     "Verification failed for <bounce@example.com> Unrouteable address Sender verify failed",
     InvalidSender},
    {550, "", "Administrative prohibition", PolicyRelated},
    {550, "", "No Such User Here", InvalidRecipient},
    {550, "",
     "The mail server could not deliver mail to user@example.com.  The account or domain may not "
     "exist, they may be blacklisted, or missing the proper dns entries.",
     InvalidRecipient},
    {451, "", "Temporary local problem - please try later", TransientFailure},

    // Sendmail
    {550, "5.1.1", "<user@example.com>... User unknown", InvalidRecipient},
    {550, "5.7.1", "<user@example.com>... Relaying denied. Proper authentication required.",
     RelayDenied},
    {553, "5.1.8",
     "<bounce@example.com>... Domain of sender address bounce@example.com does not exist",
     InvalidSender},
    {552, "5.2.3", "Message size exceeds maximum value", ContentRelated},
    {452, "4.4.5", "Insufficient disk space; try again later", TransientFailure},
    {550, "5.1.2",
     "<user@nonexistent.example>... Host unknown (Name server: nonexistent.example: "
     "host not found)",
     BadDomain},
    {551, "5.1.6", "User has moved; please try <user@new.example>", InactiveMailbox},

    // Exchange on-premises
    {421, "4.3.2", "Service not available, closing transmission channel", TransientFailure},
    {550, "5.7.1", "RESOLVER.RST.NotAuthorized; not authorized", PolicyRelated},
    {554, "5.6.0", "Invalid message content", ContentRelated},

    // Null MX (RFC 7505), and local failures the client makes up
    {556, "5.1.10", "Recipient address has null MX", BadDomain},
    {0, "", "connect to mx.example.com[192.0.2.20]:25: Connection refused", NoAnswerFromHost},
    {0, "", "connect to mx.example.com[192.0.2.20]:25: Connection timed out", NoAnswerFromHost},
    {0, "", "lost connection with mx.example.com[192.0.2.20] while receiving the initial greeting",
     BadConnection},
    {0, "",
     "Host or domain name not found. Name service error for name=example.com type=MX: Host not "
     "found, try again",
     DNSFailure},
    {550, "5.1.2",
     "Host or domain name not found. Name service error for name=nonexistent.example type=A: "
     "Host not found",
     BadDomain},
};

TEST(BounceClassifier, RealWorldReplies) {
  EXPECT_GE(std::size(kCorpus), 60u);
  BounceClassifier classifier;
  for (const Case& c : kCorpus) {
    EXPECT_EQ(name(classifier.classify(c.code, c.enhanced, c.text)), name(c.expected))
        << c.code << " " << c.enhanced << " " << c.text;
  }
}

conf::BounceRule operator_rule(std::optional<int> code, std::string enhanced, std::string text,
                               BounceCategory category) {
  return conf::BounceRule{conf::make_response_match(code, std::move(enhanced), std::move(text)),
                          category};
}

TEST(BounceClassifier, OperatorRulesComeBeforeShippedRules) {
  // A provider that says "user unknown" when it means "we block you".
  BounceClassifier classifier({operator_rule(550, "5.1.1", "(?i)user unknown", SpamBlock)});
  EXPECT_EQ(classifier.classify(550, "5.1.1", "<a@example.com>... User unknown"), SpamBlock);
  // Where the operator rule does not match, the shipped rules still do.
  EXPECT_EQ(classifier.classify(550, "5.1.1", "No such user here"), InvalidRecipient);
  EXPECT_EQ(classifier.classify(552, "5.2.2", "Mailbox full"), QuotaIssues);
}

TEST(BounceClassifier, FirstMatchingOperatorRuleWins) {
  BounceClassifier classifier({
      operator_rule(std::nullopt, "5.7", "(?i)throttl", TransientFailure),
      operator_rule(std::nullopt, "5", "(?i)throttl", PolicyRelated),
  });
  EXPECT_EQ(classifier.classify(550, "5.7.1", "Throttled, come back later"), TransientFailure);
  EXPECT_EQ(classifier.classify(550, "5.2.0", "Throttled, come back later"), PolicyRelated);
}

TEST(BounceClassifier, OperatorRulesAreTakenAsWrittenEvenForTemporaryReplies) {
  // The shipped rules never suppress on a 4xx; an operator may decide to.
  BounceClassifier classifier({operator_rule(450, "", "(?i)no such mailbox", InvalidRecipient)});
  EXPECT_EQ(classifier.classify(450, "4.1.1", "No such mailbox"), InvalidRecipient);
  EXPECT_EQ(BounceClassifier().classify(450, "4.1.1", "No such mailbox"), TransientFailure);
}

TEST(BounceClassifier, UnknownWordingFallsBackOnTheEnhancedCode) {
  BounceClassifier classifier;
  const char* text = "Zorglub refuses this message";
  EXPECT_EQ(classifier.classify(550, "5.1.1", text), InvalidRecipient);
  EXPECT_EQ(classifier.classify(550, "5.1.2", text), BadDomain);
  EXPECT_EQ(classifier.classify(550, "5.1.6", text), InactiveMailbox);
  EXPECT_EQ(classifier.classify(550, "5.1.10", text), BadDomain);
  EXPECT_EQ(classifier.classify(550, "5.2.1", text), InactiveMailbox);
  EXPECT_EQ(classifier.classify(552, "5.2.2", text), QuotaIssues);
  EXPECT_EQ(classifier.classify(552, "5.3.4", text), ContentRelated);
  EXPECT_EQ(classifier.classify(451, "4.4.1", text), NoAnswerFromHost);
  EXPECT_EQ(classifier.classify(451, "4.4.3", text), DNSFailure);
  EXPECT_EQ(classifier.classify(554, "5.4.6", text), RoutingErrors);
  EXPECT_EQ(classifier.classify(554, "5.4.7", text), MessageExpired);
  EXPECT_EQ(classifier.classify(452, "4.5.3", text), TooManyRecipients);
  EXPECT_EQ(classifier.classify(501, "5.5.4", text), ProtocolErrors);
  EXPECT_EQ(classifier.classify(554, "5.6.0", text), ContentRelated);
  EXPECT_EQ(classifier.classify(553, "5.6.7", text), ProtocolErrors);
  EXPECT_EQ(classifier.classify(550, "5.7.1", text), PolicyRelated);
  EXPECT_EQ(classifier.classify(535, "5.7.8", text), AuthenticationFailed);
  EXPECT_EQ(classifier.classify(550, "5.7.26", text), AuthenticationFailed);
  EXPECT_EQ(classifier.classify(550, "5.7.27", text), InvalidSender);
  // Microsoft's own x.7.6xx details still fall under x.7.
  EXPECT_EQ(classifier.classify(550, "5.7.750", text), PolicyRelated);
}

TEST(BounceClassifier, ReplyCodeDecidesPermanenceEnhancedCodeTheSubject) {
  BounceClassifier classifier;
  const char* text = "Zorglub refuses this message";
  // 5xx with a 4.x.x enhanced code: the subject still counts.
  EXPECT_EQ(classifier.classify(550, "4.2.2", text), QuotaIssues);
  EXPECT_EQ(classifier.classify(550, "4.1.1", text), InvalidRecipient);
  // 4xx with a 5.x.x enhanced code: temporary, so never a suppressing category.
  EXPECT_EQ(classifier.classify(450, "5.1.1", text), TransientFailure);
  EXPECT_EQ(classifier.classify(451, "5.2.1", text), TransientFailure);
  EXPECT_EQ(classifier.classify(452, "5.2.2", text), QuotaIssues);
}

TEST(BounceClassifier, FallsBackOnTheReplyCode) {
  BounceClassifier classifier;
  const char* text = "Zorglub refuses this message";
  EXPECT_EQ(classifier.classify(451, "", text), TransientFailure);
  EXPECT_EQ(classifier.classify(421, "", ""), TransientFailure);
  EXPECT_EQ(classifier.classify(550, "", text), Uncategorized);
  EXPECT_EQ(classifier.classify(554, "", ""), Uncategorized);
  // x.1.0, x.2.0 and x.3.0 say too little to act on.
  EXPECT_EQ(classifier.classify(550, "5.1.0", text), Uncategorized);
  EXPECT_EQ(classifier.classify(550, "5.2.0", text), Uncategorized);
  EXPECT_EQ(classifier.classify(450, "4.2.0", text), TransientFailure);
  // A local failure without a reply is temporary.
  EXPECT_EQ(classifier.classify(0, "", text), TransientFailure);
}

TEST(BounceClassifier, EmptyOrMalformedEnhancedCodeIsIgnored) {
  BounceClassifier classifier;
  EXPECT_EQ(classifier.classify(550, "", "No such user here"), InvalidRecipient);
  EXPECT_EQ(classifier.classify(550, "", "Mailbox full"), QuotaIssues);
  for (const char* bad : {"5.1", "5", "x.1.1", "5.1.1.1", "5.1.", "5..1", "5.1234.1", "9.1.1"}) {
    EXPECT_EQ(classifier.classify(550, bad, "Zorglub refuses this message"), Uncategorized) << bad;
  }
}

TEST(BounceClassifier, PolicyWordingNeverSuppressesTheAddress) {
  BounceClassifier classifier;
  // "mailbox unavailable" under x.7 is a block, not a missing mailbox.
  EXPECT_EQ(classifier.classify(550, "5.7.1", "Requested action not taken: mailbox unavailable"),
            PolicyRelated);
  EXPECT_FALSE(is_hard_bounce(
      classifier.classify(550, "5.7.1", "Requested action not taken: mailbox unavailable")));
}

TEST(BounceClassifier, HugeReplyIsClassifiedByItsBeginning) {
  BounceClassifier classifier;
  std::string text = "Recipient address rejected: User unknown ";
  while (text.size() < (1u << 20)) text += "x";
  EXPECT_EQ(classifier.classify(550, "5.1.1", text), InvalidRecipient);
  std::string late = std::string(1u << 20, 'y') + " blocked using zen.spamhaus.org";
  EXPECT_EQ(classifier.classify(550, "", late), Uncategorized);
}

TEST(BounceClassifier, ShippedRulesAreListedInOrder) {
  const auto& rules = BounceClassifier::default_rules();
  ASSERT_FALSE(rules.empty());
  EXPECT_EQ(&rules, &BounceClassifier::default_rules());  // built once
  for (const auto& rule : rules) {
    EXPECT_TRUE(rule.match.text_regex != nullptr) << rule.match.text;
  }
}

TEST(IsHardBounce, OnlyInvalidRecipientBadDomainAndInactiveMailbox) {
  for (BounceCategory category : conf::all_bounce_categories()) {
    bool expected =
        category == InvalidRecipient || category == BadDomain || category == InactiveMailbox;
    EXPECT_EQ(is_hard_bounce(category), expected) << name(category);
  }
}

}  // namespace
}  // namespace ringmail::policy
