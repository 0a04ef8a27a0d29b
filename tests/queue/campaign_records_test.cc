// tests/queue/campaign_records_test.cc — campaigns and their statistics in
// the control table: the codecs (round trip, and every kind of damage
// refused), the counting rules as a table of transitions, and the spool's
// commit applying them (both spools): stats move with the recipients in
// the same commit, a campaign record is created by its first message and
// never over an operator's, a stale update counts nothing.
#include "queue/campaign_records.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "queue/spool_lmdb.h"
#include "queue/spool_memory.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using mail::BounceCategory;
using testing::make_test_message;
using testing::TempDir;

CampaignRecord spring() {
  CampaignRecord c;
  c.id = "spring-2026";
  c.name = "Spring sale — ünïcode";
  c.tenant = "app1";
  c.pool = "bulk";
  c.message_rate = "300/m";
  c.state = CampaignState::paused;
  c.created_unix_ms = 1767225600123;
  return c;
}

DeliveryStats some_stats() {
  DeliveryStats s;
  s.received = 10;
  s.delivered = 5;
  s.deferred = 7;
  s.bounced = 2;
  s.expired = 1;
  s.suppressed = 1;
  s.cancelled = 1;
  s.complaints = 3;
  s.unsubscribes = 4;
  s.queued = 0;
  s.bounced_by_category = {{"InvalidRecipient", 2}, {"MessageExpired", 1}};
  return s;
}

DeliveryStats stats_of_received(uint64_t n) {
  DeliveryStats s;
  s.received = n;
  s.queued = static_cast<int64_t>(n);
  return s;
}

TEST(CampaignRecords, CampaignAndStatsRoundTrip) {
  std::string bytes;
  encode_campaign(spring(), &bytes);
  CampaignRecord back;
  ASSERT_TRUE(decode_campaign(bytes, &back));
  EXPECT_EQ(back, spring());

  bytes.clear();
  DeliveryStats negative = some_stats();
  negative.queued = -3;  // a delta may be negative; the codec keeps the sign
  encode_stats(negative, &bytes);
  DeliveryStats stats;
  ASSERT_TRUE(decode_stats(bytes, &stats));
  EXPECT_EQ(stats, negative);
}

struct Damage {
  const char* name;
  std::function<void(std::string&)> damage;
  const char* error;  // a piece of the message
};

TEST(CampaignRecords, DamagedValuesAreRefusedWithAReason) {
  std::string campaign, stats;
  encode_campaign(spring(), &campaign);
  encode_stats(some_stats(), &stats);
  const std::vector<Damage> cases = {
      {"empty", [](std::string& b) { b.clear(); }, "truncated"},
      {"one byte short", [](std::string& b) { b.pop_back(); }, "checksum"},
      {"a flipped bit", [](std::string& b) { b[b.size() / 2] ^= 0x10; }, "checksum"},
      {"unknown version", [](std::string& b) { b[0] = 9; }, "unknown version"},
      {"trailing byte", [](std::string& b) { b.insert(b.size() - 4, "x"); }, "checksum"},
  };
  for (const Damage& d : cases) {
    SCOPED_TRACE(d.name);
    std::string c = campaign, s = stats;
    d.damage(c);
    d.damage(s);
    CampaignRecord record;
    DeliveryStats counts;
    const DecodeResult rc = decode_campaign(c, &record);
    const DecodeResult rs = decode_stats(s, &counts);
    EXPECT_FALSE(rc);
    EXPECT_FALSE(rs);
    EXPECT_NE(rc.error.find(d.error), std::string::npos) << rc.error;
    EXPECT_NE(rs.error.find(d.error), std::string::npos) << rs.error;
  }
}

TEST(CampaignRecords, CampaignIdsAreWhatTheApiAllows) {
  for (const std::string& good :
       std::vector<std::string>{"a", "spring-2026", "A.b_c-9", std::string(64, 'x')})
    EXPECT_TRUE(valid_campaign_id(good)) << good;
  for (const char* bad : {"", "has space", "slash/x", "ünï", "a\nb", "semi;colon"})
    EXPECT_FALSE(valid_campaign_id(bad)) << bad;
  EXPECT_FALSE(valid_campaign_id(std::string(65, 'x')));
}

TEST(CampaignRecords, StatsJournalRoundTripAndDamage) {
  StatsDeltas deltas{{campaign_stats_key("spring"), some_stats()},
                     {tenant_stats_key("app1"), stats_of_received(3)}};
  std::string bytes;
  encode_stats_journal(deltas, &bytes);
  StatsDeltas back;
  ASSERT_TRUE(decode_stats_journal(bytes, &back));
  EXPECT_EQ(back, deltas);
  std::string torn = bytes.substr(0, bytes.size() - 1);
  EXPECT_FALSE(decode_stats_journal(torn, &back));
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 1;
  EXPECT_FALSE(decode_stats_journal(flipped, &back));
  EXPECT_EQ(stats_journal_sequence(stats_journal_key(42)), 42u);
  EXPECT_EQ(stats_journal_sequence("stats-journal/x"), std::nullopt);
  EXPECT_EQ(stats_journal_sequence(campaign_stats_key("spring")), std::nullopt);
}

// --- counting

MessageMetadata meta(std::string campaign, std::string tenant = "app1") {
  MessageMetadata m;
  m.campaign = std::move(campaign);
  m.tenant = std::move(tenant);
  return m;
}

struct Transition {
  const char* name;
  RecipientState from, to;
  std::optional<BounceCategory> category;
  DeliveryStats want;  // of the campaign (and of its tenant)
};

DeliveryStats stats_of(int64_t queued, std::function<void(DeliveryStats&)> set = {}) {
  DeliveryStats s;
  s.queued = queued;
  if (set) set(s);
  return s;
}

TEST(StatsBatch, EachTransitionCountsWhatTheStatsShow) {
  using S = RecipientState;
  const std::vector<Transition> cases = {
      {"delivered", S::queued, S::delivered, {}, stats_of(-1, [](auto& s) { s.delivered = 1; })},
      {"delivered after a deferral",
       S::deferred,
       S::delivered,
       {},
       stats_of(-1, [](auto& s) { s.delivered = 1; })},
      {"a deferral", S::queued, S::deferred, {}, stats_of(0, [](auto& s) { s.deferred = 1; })},
      {"deferred again",
       S::deferred,
       S::deferred,
       {},
       stats_of(0, [](auto& s) { s.deferred = 1; })},
      {"bounced with its category", S::queued, S::bounced, BounceCategory::InvalidRecipient,
       stats_of(-1,
                [](auto& s) {
                  s.bounced = 1;
                  s.bounced_by_category = {{"InvalidRecipient", 1}};
                })},
      {"bounced by the operator (no category)",
       S::deferred,
       S::bounced,
       {},
       stats_of(-1, [](auto& s) { s.bounced = 1; })},
      {"expired",
       S::deferred,
       S::expired,
       {},
       stats_of(-1,
                [](auto& s) {
                  s.expired = 1;
                  s.bounced_by_category = {{"MessageExpired", 1}};
                })},
      {"cancelled", S::queued, S::cancelled, {}, stats_of(-1, [](auto& s) { s.cancelled = 1; })},
      {"suppressed", S::queued, S::suppressed, {}, stats_of(-1, [](auto& s) { s.suppressed = 1; })},
      {"queued again (a dead letter's retry)", S::bounced, S::queued, {}, stats_of(1)},
      {"released from quarantine", S::quarantined, S::queued, {}, DeliveryStats{}},
      {"a final state rewritten (a repeated result)",
       S::delivered,
       S::delivered,
       {},
       DeliveryStats{}},
      {"into a transaction", S::queued, S::in_flight, {}, DeliveryStats{}},
  };
  for (const Transition& t : cases) {
    SCOPED_TRACE(t.name);
    StatsBatch batch;
    batch.count_transition(meta("spring"), t.from, t.to, t.category);
    if (t.want == DeliveryStats{}) {
      EXPECT_TRUE(batch.deltas().empty());
      continue;
    }
    ASSERT_EQ(batch.deltas().size(), 2u);
    EXPECT_EQ(batch.deltas().at(campaign_stats_key("spring")), t.want);
    EXPECT_EQ(batch.deltas().at(tenant_stats_key("app1")), t.want);
  }
}

TEST(StatsBatch, NewMessagesAreReceivedAndQueuedAndNameTheirCampaign) {
  StatsBatch batch;
  SpoolMessage m = make_test_message(3, 100, "spring");
  m.envelope.recipients[2].state = RecipientState::suppressed;  // final at reception
  batch.count_new(m);
  batch.count_new(make_test_message(1, 100, "spring"));
  DeliveryStats want;
  want.received = 4;
  want.queued = 3;
  want.suppressed = 1;
  EXPECT_EQ(batch.deltas().at(campaign_stats_key("spring")), want);
  ASSERT_EQ(batch.new_campaigns().size(), 1u);
  const CampaignRecord& c = batch.new_campaigns().at(campaign_record_key("spring"));
  EXPECT_EQ(c.id, "spring");
  EXPECT_EQ(c.tenant, "app1");
  EXPECT_EQ(c.state, CampaignState::active);
  EXPECT_EQ(c.created_unix_ms, m.meta.received_unix_ms);
}

TEST(StatsBatch, MailWithoutCampaignCountsForItsTenantOnlyAndBadIdsMakeNoCampaign) {
  StatsBatch batch;
  batch.count_new(make_test_message(1, 100, ""));
  batch.count_new(make_test_message(1, 100, "not a valid id"));
  EXPECT_TRUE(batch.new_campaigns().empty());
  ASSERT_EQ(batch.deltas().size(), 1u);
  EXPECT_EQ(batch.deltas().at(tenant_stats_key("app1")).received, 2u);
  StatsBatch none;
  SpoolMessage anonymous = make_test_message(1, 100, "");
  anonymous.meta.tenant.clear();
  none.count_new(anonymous);
  // A DSN keeps its original's tenant and campaign, but is not their mail.
  SpoolMessage dsn = make_test_message(1, 100, "spring");
  dsn.meta.listener = kDsnListener;
  none.count_new(dsn);
  none.count_transition(dsn.meta, RecipientState::queued, RecipientState::delivered, {});
  EXPECT_TRUE(none.empty());
}

// --- the spool's commit applies them

struct SpoolKind {
  const char* name;
  std::function<std::unique_ptr<Spool>(const TempDir&)> open;
};
void PrintTo(const SpoolKind& kind, std::ostream* os) { *os << kind.name; }

class SpoolStats : public ::testing::TestWithParam<SpoolKind> {
 protected:
  void SetUp() override {
    spool_ = GetParam().open(dir_);
    ASSERT_NE(spool_, nullptr);
  }
  DeliveryStats stats(const std::string& key) {
    const StatsDeltas found = spool_->delivery_stats(key);
    auto it = found.find(key);
    return it == found.end() ? DeliveryStats{} : it->second;
  }
  std::optional<CampaignRecord> campaign(const std::string& id) {
    auto bytes = spool_->control(campaign_record_key(id));
    if (!bytes) return std::nullopt;
    CampaignRecord c;
    EXPECT_TRUE(decode_campaign(*bytes, &c));
    return c;
  }
  StoreOutcome commit(std::vector<SpoolMessage*> messages, std::vector<RecipientUpdate> updates,
                      std::vector<MessageId> finished = {}) {
    return spool_->commit(messages, updates, finished);
  }

  TempDir dir_;
  std::unique_ptr<Spool> spool_;
};

RecipientUpdate update(const SpoolMessage& m, uint32_t index, RecipientState state,
                       std::optional<BounceCategory> category = std::nullopt) {
  RecipientUpdate u{m.id, index, state, 1, 0};
  u.category = category;
  return u;
}

TEST_P(SpoolStats, StatsMoveWithTheRecipientsInTheSameCommit) {
  SpoolMessage m = make_test_message(3, 100, "spring");
  ASSERT_TRUE(commit({&m}, {}).ok());
  DeliveryStats want;
  want.received = 3;
  want.queued = 3;
  EXPECT_EQ(stats(campaign_stats_key("spring")), want);
  EXPECT_EQ(stats(tenant_stats_key("app1")), want);
  ASSERT_TRUE(campaign("spring"));
  EXPECT_EQ(campaign("spring")->tenant, "app1");

  // One delivery, one bounce, one deferral in the next commit; a second
  // message of the same campaign in it too.
  SpoolMessage m2 = make_test_message(1, 100, "spring");
  ASSERT_TRUE(
      commit({&m2}, {update(m, 0, RecipientState::delivered),
                     update(m, 1, RecipientState::bounced, BounceCategory::InvalidRecipient),
                     update(m, 2, RecipientState::deferred)})
          .ok());
  want.received = 4;
  want.queued = 2;
  want.delivered = 1;
  want.bounced = 1;
  want.deferred = 1;
  want.bounced_by_category = {{"InvalidRecipient", 1}};
  EXPECT_EQ(stats(campaign_stats_key("spring")), want);

  // The deferred one expires; the message is finished and deleted.
  ASSERT_TRUE(commit({}, {update(m, 2, RecipientState::expired)}, {m.id}).ok());
  want.queued = 1;
  want.expired = 1;
  want.bounced_by_category["MessageExpired"] = 1;
  EXPECT_EQ(stats(campaign_stats_key("spring")), want);

  // A repeated result (as after a restart) and a stale one count nothing.
  ASSERT_TRUE(commit({}, {update(m2, 0, RecipientState::delivered)}).ok());
  want.queued = 0;
  want.delivered = 2;
  ASSERT_TRUE(commit({}, {update(m2, 0, RecipientState::delivered),
                          update(m, 0, RecipientState::delivered)})
                  .ok());
  EXPECT_EQ(stats(campaign_stats_key("spring")), want);
}

TEST_P(SpoolStats, AnOperatorsCampaignRecordIsNeverOverwrittenByMail) {
  CampaignRecord mine = spring();
  mine.id = "spring";
  std::string bytes;
  encode_campaign(mine, &bytes);
  ASSERT_TRUE(spool_->put_control(campaign_record_key("spring"), bytes).ok());
  SpoolMessage m = make_test_message(1, 100, "spring");
  m.meta.tenant = "someone-else";
  ASSERT_TRUE(commit({&m}, {}).ok());
  EXPECT_EQ(campaign("spring"), mine);
  EXPECT_EQ(stats(campaign_stats_key("spring")).received, 1u);
}

TEST_P(SpoolStats, AFailedCommitCountsNothing) {
  SpoolMessage m = make_test_message(1, 100, "spring");
  ASSERT_TRUE(commit({&m}, {}).ok());
  SpoolMessage duplicate = m;  // same id: the whole commit is refused
  EXPECT_FALSE(commit({&duplicate}, {update(m, 0, RecipientState::delivered)}).ok());
  DeliveryStats want;
  want.received = 1;
  want.queued = 1;
  if (std::string(GetParam().name) == "lmdb") {
    EXPECT_EQ(stats(campaign_stats_key("spring")), want);
  }
}

// A complaint counts for the campaign and tenant it names, with the
// control record that goes with it, in one commit of no recipient.
TEST_P(SpoolStats, AdditionsCountComplaintsWithoutARecipient) {
  SpoolMessage m = make_test_message(1, 100, "spring");
  ASSERT_TRUE(commit({&m}, {update(m, 0, RecipientState::delivered)}).ok());
  StatsAddition complaint{"app1", "spring", {}};
  complaint.delta.complaints = 1;
  StatsAddition unsubscribe{"app1", "", {}};  // no campaign: the tenant only
  unsubscribe.delta.unsubscribes = 1;
  const std::vector<StatsAddition> additions{complaint, unsubscribe};
  const std::vector<ControlWrite> controls{{"feedback-seen/x", std::string("1")}};
  ASSERT_TRUE(spool_->commit({}, {}, {}, controls, additions).ok());
  DeliveryStats campaign_want;
  campaign_want.received = 1;
  campaign_want.delivered = 1;
  campaign_want.complaints = 1;
  EXPECT_EQ(stats(campaign_stats_key("spring")), campaign_want);
  DeliveryStats tenant_want = campaign_want;
  tenant_want.unsubscribes = 1;
  EXPECT_EQ(stats(tenant_stats_key("app1")), tenant_want);
  EXPECT_EQ(spool_->control("feedback-seen/x"), "1");
  // Counted again in a second commit: additions are deltas, not states.
  ASSERT_TRUE(spool_->commit({}, {}, {}, {}, std::span(additions).first(1)).ok());
  EXPECT_EQ(stats(campaign_stats_key("spring")).complaints, 2u);
  // A campaign id that is not one, a tenant too long for a key: not counted.
  StatsAddition bad{std::string(300, 't'), "not a campaign id", {}};
  bad.delta.complaints = 1;
  ASSERT_TRUE(spool_->commit({}, {}, {}, {}, std::span(&bad, 1)).ok());
  EXPECT_TRUE(spool_->delivery_stats(campaign_stats_key("not a campaign id")).empty());
  EXPECT_EQ(spool_->delivery_stats(kTenantStatsPrefix).size(), 1u);
  EXPECT_FALSE(campaign("not a campaign id"));
}

// The LMDB spool writes one journal entry per commit and folds them into
// the records every so often: across folds and reopens (a restart, or
// kill -9 between any two commits) the sums stay exact.
TEST(SpoolStatsJournal, SumsStayExactAcrossFoldsAndReopens) {
  TempDir dir;
  std::string error;
  auto open = [&] {
    auto spool = open_lmdb_spool(dir.path(), 64ull << 20, &error);
    EXPECT_NE(spool, nullptr) << error;
    return spool;
  };
  auto spool = open();
  uint64_t received = 0, delivered = 0;
  std::vector<SpoolMessage> pending;
  for (int round = 0; round < 300; ++round) {
    SpoolMessage m = make_test_message(1, 64, "c" + std::to_string(round % 7));
    SpoolMessage* batch[] = {&m};
    std::vector<RecipientUpdate> updates;
    if (!pending.empty()) {
      updates.push_back(update(pending.back(), 0, RecipientState::delivered));
      ++delivered;
      pending.pop_back();
    }
    ASSERT_TRUE(spool->commit(batch, updates, {}).ok());
    ++received;
    pending.push_back(m);
    if (round == 10 || round == 150) {  // restart mid-journal
      spool.reset();
      spool = open();
    }
    const StatsDeltas tenant = spool->delivery_stats(tenant_stats_key("app1"));
    ASSERT_EQ(tenant.size(), 1u);
    ASSERT_EQ(tenant.begin()->second.received, received) << "round " << round;
    ASSERT_EQ(tenant.begin()->second.delivered, delivered) << "round " << round;
    ASSERT_EQ(tenant.begin()->second.queued, static_cast<int64_t>(received - delivered));
  }
  uint64_t by_campaign = 0;
  for (const auto& [key, stats] : spool->delivery_stats(kCampaignStatsPrefix)) {
    by_campaign += stats.received;
  }
  EXPECT_EQ(by_campaign, received);
  EXPECT_EQ(spool->delivery_stats(kCampaignStatsPrefix).size(), 7u);
  EXPECT_LT(spool->controls(kStatsJournalPrefix).size(), 64u) << "the journal is folded";
  EXPECT_EQ(spool->controls(kCampaignPrefix).size(), 7u) << "one record per campaign";
}

INSTANTIATE_TEST_SUITE_P(
    BothSpools, SpoolStats,
    ::testing::Values(SpoolKind{"memory",
                                [](const TempDir&) -> std::unique_ptr<Spool> {
                                  return std::make_unique<MemorySpool>();
                                }},
                      SpoolKind{"lmdb",
                                [](const TempDir& dir) -> std::unique_ptr<Spool> {
                                  std::string error;
                                  auto spool = open_lmdb_spool(dir.path(), 64ull << 20, &error);
                                  EXPECT_NE(spool, nullptr) << error;
                                  return spool;
                                }}),
    [](const ::testing::TestParamInfo<SpoolKind>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace ringmail::queue
