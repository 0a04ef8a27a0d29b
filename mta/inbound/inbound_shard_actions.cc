// Carries out what a session asked for: replies (through TLS when it is
// up), STARTTLS, DKIM signing and the spool commit, AUTH checks.
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "mta/dkim/dkim_signer.h"
#include "mta/inbound/inbound_shard.h"
#include "mta/inbound/message_signing.h"
#include "mta/milter/milter_client.h"
#include "queue/spool_writer.h"
#include "runtime/metrics_registry.h"

namespace ringmail::mta {

void InboundShard::create_session(Connection& c, const std::string& tls_description) {
  ConnectionInfo info;
  info.peer_ip = c.peer.ip;
  info.peer_port = c.peer.port;
  info.local_ip = c.local.ip;
  info.local_port = c.local.port;
  info.relay_network = c.relay_network;
  info.implicit_tls = !tls_description.empty();
  info.tls_description = tls_description;
  info.now_unix_ms = unix_now_ms();
  c.session = std::make_unique<SmtpServerSession>(c.settings->sessions[c.listener], info);
  c.session->set_now(info.now_unix_ms);
}

void InboundShard::on_bytes(uint32_t slot, Connection& c, std::string_view bytes) {
  c.last_activity = Clock::now();
  if (!c.tls) {
    c.session->set_now(unix_now_ms());
    apply(slot, c, c.session->receive(bytes));
    return;
  }
  std::string plain;
  const bool was_up = c.tls_up;
  TlsStatus status = c.tls->feed(bytes, plain);
  queue_wire(slot, c, c.tls->take_output());
  if (status == TlsStatus::failed) {
    tls_failures_->inc();
    spdlog::info("inbound TLS from [{}]:{} failed: {}", c.peer.ip, c.peer.port, c.tls->error());
    c.close_after_flush = true;
    flush(slot, c);
    return;
  }
  if (!c.tls_up && c.tls->handshake_done()) {
    c.tls_up = true;
    if (!c.session) {  // implicit TLS: the dialogue starts now
      create_session(c, c.tls->description());
      apply(slot, c, c.session->start());
    } else {
      c.session->set_now(unix_now_ms());
      apply(slot, c, c.session->tls_established(c.tls->description()));
    }
  }
  // Ciphertext that gives no plaintext (yet) still counts for the command
  // line deadline, or a client could hold the connection by trickling it.
  if ((!plain.empty() || was_up) && c.session && !c.closing) {
    c.session->set_now(unix_now_ms());
    apply(slot, c, c.session->receive(plain));
  }
  if (status == TlsStatus::closed) c.close_after_flush = true;
  flush(slot, c);  // handshake records need sending even when no reply was made
}

// Carries out what the session asked for.
void InboundShard::apply(uint32_t slot, Connection& c, SessionOutput out) {
  if (!out.replies.empty()) queue_plaintext(slot, c, out.replies);
  if (out.start_tls) {
    if (c.settings->tls) {
      c.tls = std::make_unique<TlsSession>(*c.settings->tls);
      c.tls_up = false;
    } else {
      out.close = true;
    }
  }
  if (out.close) c.close_after_flush = true;
  if (out.commit && c.settings->sessions[c.listener].mode == SessionMode::feedback) {
    submit_feedback(slot, c, std::move(out.commit));
  } else if (out.commit) {
    DkimBodyHashes streamed{std::move(out.dkim_body_hash_relaxed),
                            std::move(out.dkim_body_hash_simple)};
    submit_commit(slot, c, std::move(out.commit), std::move(streamed));
  }
  if (out.auth) start_auth(slot, c, std::move(*out.auth));
  flush(slot, c);
}

void InboundShard::queue_plaintext(uint32_t slot, Connection& c, std::string_view text) {
  if (c.tls && c.tls_up) {
    if (c.tls->write(text) != TlsStatus::ok) c.close_after_flush = true;
    queue_wire(slot, c, c.tls->take_output());
  } else {
    queue_wire(slot, c, std::string(text));
  }
}

// DKIM signs once per message, here on the shard (the cores sign in
// parallel), before the commit: a retry or a second recipient never re-signs.
void InboundShard::sign(const DkimSignerSet& signers, queue::SpoolMessage& message,
                        const DkimBodyHashes& streamed) {
  const int64_t now = unix_now_ms() / 1000;
  for (const auto& sig : prepend_dkim_signatures(signers, message, now, &streamed)) {
    dkim_signatures_
        .get(*server_.deps_.metrics, {sig.signer->domain(), sig.signer->algorithm_name()})
        .inc();
  }
}

// A complete message goes through the milters (off the shard), then DKIM,
// then the spool. The client hears nothing until the spool has answered.
void InboundShard::submit_commit(uint32_t slot, Connection& c,
                                 std::unique_ptr<queue::SpoolMessage> message,
                                 DkimBodyHashes streamed) {
  const policy::CampaignGate* campaigns = server_.deps_.campaigns;
  if (campaigns && campaigns->refuses(message->meta.campaign)) {
    spdlog::info("message {} from [{}] refused: campaign {} is cancelled", message->id.value,
                 c.peer.ip, message->meta.campaign);
    CommitResult result;
    result.status = CommitResult::Status::rejected;
    result.reply = "550 5.7.1 Campaign " + message->meta.campaign + " was cancelled";
    finish_commit(slot, c, result);
    return;
  }
  MilterClient* milters = server_.deps_.milters;
  if (!milters || milters->empty()) {
    sign_and_store(slot, c, std::move(message), streamed);
    return;
  }
  auto job = std::make_shared<MilterJob>();
  job->message = std::move(*message);
  MilterContext& context = job->context;
  const SessionSettings& settings = c.settings->sessions[c.listener];
  context.hostname = settings.hostname;
  context.daemon_name = settings.listener_name;
  context.local_ip = c.local.ip;
  context.client_ip = c.peer.ip;
  context.client_port = c.peer.port;
  context.helo = job->message.meta.helo;
  if (settings.mode == SessionMode::submission) context.auth_user = job->message.meta.tenant;
  const uint32_t generation = c.generation;
  milters->run(job, [this, slot, generation, streamed](MilterOutcome outcome) {
    auto shared = std::make_shared<MilterOutcome>(std::move(outcome));
    post([this, slot, generation, shared, streamed] {
      Connection* c = lookup(slot, generation);
      // A client that left before its reply never saw a 250: nothing to keep.
      if (!c || c->closing || !c->session) return;
      after_milters(slot, *c, std::move(*shared), streamed);
    });
  });
}

void InboundShard::after_milters(uint32_t slot, Connection& c, MilterOutcome outcome,
                                 DkimBodyHashes streamed) {
  // A milter that replaced the body makes the streamed body hashes stale.
  for (const MilterModification& mod : outcome.verdict.modifications) {
    if (mod.kind == MilterModification::Kind::replace_body) streamed = {};
  }
  const queue::SpoolMessage& m = outcome.message;
  for (const MilterReport& report : outcome.milters) {
    if (!report.failure.empty())
      spdlog::warn("milter {} failed for {}: {}", report.milter, m.id.value, report.failure);
  }
  // Milters run after DATA, so a recipient one refuses was already given
  // 250 at RCPT; it is dropped from the message and the refusal logged.
  for (const MilterRejectedRecipient& r : outcome.verdict.rejected_recipients)
    spdlog::warn("message {}: milter refused recipient <{}>: {}", m.id.value, r.address, r.reply);
  CommitResult result;
  switch (outcome.verdict.action) {
    case MilterAction::reject:
    case MilterAction::tempfail:
    case MilterAction::replycode:
      spdlog::info("message {} from [{}] refused by a milter: {}", m.id.value, c.peer.ip,
                   outcome.verdict.reply);
      result.status = CommitResult::Status::rejected;
      result.reply = outcome.verdict.reply;
      finish_commit(slot, c, result);
      return;
    case MilterAction::discard:
      // The client is told the message was taken (RFC: discard is silent).
      spdlog::info("message {} from [{}] discarded by a milter", m.id.value, c.peer.ip);
      result.status = CommitResult::Status::committed;
      finish_commit(slot, c, result);
      return;
    case MilterAction::quarantine:
      spdlog::info("message {} quarantined by a milter: {}", m.id.value,
                   outcome.verdict.quarantine_reason);
      for (auto& r : outcome.message.envelope.recipients)
        r.state = queue::RecipientState::quarantined;
      break;
    case MilterAction::proceed:
    case MilterAction::accept:
      break;
  }
  sign_and_store(slot, c, std::make_unique<queue::SpoolMessage>(std::move(outcome.message)),
                 streamed);
}

// A report goes to the feedback processor whole: no milter, no DKIM, no
// campaign (it is nobody's mail), and the client hears nothing until what
// it requires is on disk.
void InboundShard::submit_feedback(uint32_t slot, Connection& c,
                                   std::unique_ptr<queue::SpoolMessage> message) {
  FeedbackSink* feedback = server_.deps_.feedback;
  if (!feedback) {
    spdlog::error("report {} from [{}]: no feedback processor; answered 451", message->id.value,
                  c.peer.ip);
    CommitResult result;
    result.status = CommitResult::Status::failed;
    finish_commit(slot, c, result);
    return;
  }
  const uint32_t generation = c.generation;
  feedback->submit(std::move(message), [this, slot, generation](const CommitResult& result) {
    post([this, slot, generation, result] {
      Connection* c = lookup(slot, generation);
      if (!c || c->closing || !c->session) return;
      finish_commit(slot, *c, result);
    });
  });
}

void InboundShard::finish_commit(uint32_t slot, Connection& c, const CommitResult& result) {
  c.session->set_now(unix_now_ms());
  apply(slot, c, c.session->commit_finished(result));
  if (stopping_) say_shutdown_if_idle(slot, c);
}

void InboundShard::sign_and_store(uint32_t slot, Connection& c,
                                  std::unique_ptr<queue::SpoolMessage> message,
                                  const DkimBodyHashes& streamed) {
  bool deferred = false;
  if (c.settings->config) {
    prepend_feedback_id(*c.settings->config, *message);
    deferred = defer_signing_for_unsubscribe(*c.settings->config, *message);
  }
  if (!deferred && c.settings->dkim && !c.settings->dkim->empty()) {
    sign(*c.settings->dkim, *message, streamed);
  }
  const uint32_t generation = c.generation;
  server_.deps_.spool_writer->submit(
      std::move(message),
      [this, slot, generation](const queue::SpoolMessage&, queue::StoreStatus status,
                               const std::string& detail) {
        CommitResult result;
        result.detail = detail;
        switch (status) {
          case queue::StoreStatus::ok:
            result.status = CommitResult::Status::committed;
            break;
          case queue::StoreStatus::spool_full:
            result.status = CommitResult::Status::spool_full;
            break;
          case queue::StoreStatus::failed:
            result.status = CommitResult::Status::failed;
            break;
        }
        post([this, slot, generation, result] {
          Connection* c = lookup(slot, generation);
          if (!c || c->closing || !c->session) return;
          finish_commit(slot, *c, result);
        });
      });
}

void InboundShard::start_auth(uint32_t slot, Connection& c, AuthRequest request) {
  AuthService* auth = server_.deps_.auth;
  if (!auth) {
    AuthResult r;
    r.status = AuthResult::Status::temporary_failure;
    apply(slot, c, c.session->auth_finished(r));
    return;
  }
  // Every attempt of a client takes its turn across all the client's
  // connections, before anything about the credentials is looked at (a
  // cached success answered at once would tell which guess was right).
  AuthAdmission admission = auth->admit(request.peer_ip);
  switch (admission.decision) {
    case AuthAdmission::Decision::go:
      verify_admitted(slot, c, std::move(request));
      return;
    case AuthAdmission::Decision::wait:
      c.auth_waiting_admission = std::move(request);
      arm_auth_timer(slot, c, admission.delay);
      return;
    case AuthAdmission::Decision::refuse:  // no crypt, and nothing learnt
      OPENSSL_cleanse(request.password.data(), request.password.size());
      deliver_auth(slot, c, AuthOutcome{AuthOutcome::Status::tempfail, {}});
      return;
  }
}

void InboundShard::verify_admitted(uint32_t slot, Connection& c, AuthRequest request) {
  AuthService* auth = server_.deps_.auth;
  if (auto cached = auth->try_cached(request)) {
    deliver_auth(slot, c, *cached);
    return;
  }
  const uint32_t generation = c.generation;
  auth->verify(std::move(request), [this, slot, generation](AuthOutcome outcome) {
    post([this, slot, generation, outcome] {
      if (Connection* c = lookup(slot, generation); c && !c->closing)
        deliver_auth(slot, *c, outcome);
    });
  });
}

void InboundShard::arm_auth_timer(uint32_t slot, Connection& c, std::chrono::nanoseconds delay) {
  c.auth_delay_ts.tv_sec = delay.count() / 1000000000;
  c.auth_delay_ts.tv_nsec = delay.count() % 1000000000;
  c.auth_delay_armed = true;
  io_uring_sqe* s = sqe();
  io_uring_prep_timeout(s, &c.auth_delay_ts, 0, 0);
  io_uring_sqe_set_data64(s, pack(Op::auth_delay, slot, c.generation));
  io_uring_submit(reactor_.ring());  // the timespec is read at submission
}

AuthResult InboundShard::to_result(const AuthOutcome& outcome) {
  AuthResult r;
  switch (outcome.status) {
    case AuthOutcome::Status::ok:
      r.status = AuthResult::Status::ok;
      break;
    case AuthOutcome::Status::invalid:
      r.status = AuthResult::Status::invalid_credentials;
      break;
    case AuthOutcome::Status::tempfail:
      r.status = AuthResult::Status::temporary_failure;
      break;
  }
  return r;
}

void InboundShard::deliver_auth(uint32_t slot, Connection& c, const AuthOutcome& outcome) {
  if (outcome.delay.count() > 0) {  // failed AUTH is slowed down per client
    c.delayed_auth = outcome;
    arm_auth_timer(slot, c, outcome.delay);
    return;
  }
  c.session->set_now(unix_now_ms());
  apply(slot, c, c.session->auth_finished(to_result(outcome)));
}

void InboundShard::on_auth_delay(uint32_t slot, uint32_t generation) {
  Connection* c = lookup(slot, generation);
  if (!c) return;
  c->auth_delay_armed = false;
  std::optional<AuthRequest> admitted = std::exchange(c->auth_waiting_admission, std::nullopt);
  if (c->closing) {
    if (admitted) OPENSSL_cleanse(admitted->password.data(), admitted->password.size());
    maybe_finish_close(slot, *c);
    return;
  }
  if (admitted) {  // its admission time has come
    verify_admitted(slot, *c, std::move(*admitted));
    return;
  }
  c->session->set_now(unix_now_ms());
  apply(slot, *c, c->session->auth_finished(to_result(c->delayed_auth)));
}

// Between transactions a client can simply be told to come back later.
void InboundShard::say_shutdown_if_idle(uint32_t slot, Connection& c) {
  if (c.closing || c.shutdown_said || !c.session) return;
  if (c.session->in_transaction() || c.session->waiting()) return;
  c.shutdown_said = true;
  apply(slot, c, c.session->shutdown());
}

}  // namespace ringmail::mta
