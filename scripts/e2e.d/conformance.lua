-- miltertest script for the conformance filter (examples/conformance.rs).
--
--   miltertest -s scripts/e2e.d/conformance.lua -D socket=inet:PORT@127.0.0.1
--
-- Prints one line per check: "CHECK ok <what>" or "CHECK FAIL <what> (details)"; e2e.py turns
-- them into its report lines. miltertest cannot see CHGFROM or ADDRCPT_PAR, so the sender
-- change is not checked here (the MTA runs check it).
-- Notes (this machine): error() exits 1 without printing its message, so everything is
-- printed before erroring; a failed mt.connect() raises a silent Lua error (pcall); macros
-- are sent only when the script calls mt.macro() (none are sent here, so the library uses
-- the plain libmilter header numbering: ADDHEADER for added headers).

local failed = 0

local function check(what, ok, details)
  if ok then
    print("CHECK ok " .. what)
  else
    failed = failed + 1
    print("CHECK FAIL " .. what .. " (" .. tostring(details or "") .. ")")
  end
  return ok
end

-- Stops the script after a failed step (the rest would only repeat the failure).
local function fatal(what, details)
  check(what, false, details)
  print("miltertest: stopping after a failed step")
  io.stdout:flush()
  error(what)
end

local function step(what, err, want_reply, conn)
  if err ~= nil then
    fatal(what .. ": sent", err)
  end
  local got = mt.getreply(conn)
  if not check(what, got == want_reply,
               "reply " .. string.format("%q", got) .. ", want " .. string.format("%q", want_reply)) then
    fatal(what .. ": cannot go on")
  end
end

local sock = socket or "inet:7357@127.0.0.1"
local okc, conn = pcall(mt.connect, sock, 40, 0.25)
if not okc or conn == nil then
  fatal("connect to " .. sock, tostring(conn))
end
check("connect to the filter at " .. sock, true)

local err = mt.negotiate(conn, nil, nil, nil)
if err ~= nil then
  fatal("negotiate", err)
end
check("negotiate: filter asks for ADDHDRS", mt.test_action(conn, SMFIF_ADDHDRS))
check("negotiate: filter asks for CHGHDRS", mt.test_action(conn, SMFIF_CHGHDRS))
check("negotiate: filter asks for ADDRCPT", mt.test_action(conn, SMFIF_ADDRCPT))
check("negotiate: filter asks for DELRCPT", mt.test_action(conn, SMFIF_DELRCPT))
check("negotiate: filter asks for CHGBODY", mt.test_action(conn, SMFIF_CHGBODY))
check("negotiate: filter asks for QUARANTINE", mt.test_action(conn, SMFIF_QUARANTINE))
check("negotiate: filter asks for CHGFROM", mt.test_action(conn, SMFIF_CHGFROM))

step("connect info: continue", mt.conninfo(conn, "client.example.test", "127.0.0.1"),
     SMFIR_CONTINUE, conn)
step("HELO: continue", mt.helo(conn, "client.example.test"), SMFIR_CONTINUE, conn)

-- message 1: rejected at MAIL with a custom reply ("550 5.7.1 go away")
step("MAIL FROM:<reject@example.com>: custom reply (REPLYCODE)",
     mt.mailfrom(conn, "<reject@example.com>"), SMFIR_REPLYCODE, conn)

-- message 2: edits at end of message
local function message(subject, body)
  step("MAIL FROM:<sender@example.com>: continue", mt.mailfrom(conn, "<sender@example.com>"),
       SMFIR_CONTINUE, conn)
  step("RCPT TO:<keep@example.com>: continue", mt.rcptto(conn, "<keep@example.com>"),
       SMFIR_CONTINUE, conn)
  step("RCPT TO:<tempfail@example.com>: tempfail", mt.rcptto(conn, "<tempfail@example.com>"),
       SMFIR_TEMPFAIL, conn)
  step("RCPT TO:<removeme@example.com>: continue", mt.rcptto(conn, "<removeme@example.com>"),
       SMFIR_CONTINUE, conn)
  step("header From: continue", mt.header(conn, "From", "<sender@example.com>"),
       SMFIR_CONTINUE, conn)
  step("header Subject: continue", mt.header(conn, "Subject", subject), SMFIR_CONTINUE, conn)
  step("header X-Conformance-Run: continue", mt.header(conn, "X-Conformance-Run", "miltertest"),
       SMFIR_CONTINUE, conn)
  step("end of headers: continue", mt.eoh(conn), SMFIR_CONTINUE, conn)
  step("body chunk: continue", mt.bodystring(conn, body), SMFIR_CONTINUE, conn)
  step("end of message: accept", mt.eom(conn), SMFIR_ACCEPT, conn)
end

message("Hello miltertest", "Hello World\r\nmixed Case: aBc\r\n")
check("EOM: header X-Conformance: seen added", mt.eom_check(conn, MT_HDRADD, "X-Conformance", "seen"))
check("EOM: Subject changed to '[conformance] Hello miltertest'",
      mt.eom_check(conn, MT_HDRCHANGE, "Subject", "[conformance] Hello miltertest"))
check("EOM: X-Conformance-Run not changed", not mt.eom_check(conn, MT_HDRCHANGE, "X-Conformance-Run"))
check("EOM: no header deleted", not mt.eom_check(conn, MT_HDRDELETE))
check("EOM: recipient <added@example.com> added", mt.eom_check(conn, MT_RCPTADD, "<added@example.com>"))
check("EOM: recipient <removeme@example.com> deleted",
      mt.eom_check(conn, MT_RCPTDELETE, "<removeme@example.com>"))
check("EOM: body replaced by its upper case",
      mt.eom_check(conn, MT_BODYCHANGE, "HELLO WORLD\r\nMIXED CASE: ABC\r\n"))
check("EOM: not quarantined", not mt.eom_check(conn, MT_QUARANTINE))

-- message 3: quarantine
message("please QuArAnTiNe me", "quarantine body\r\n")
check("EOM (subject with 'quarantine'): quarantined with reason 'conformance quarantine'",
      mt.eom_check(conn, MT_QUARANTINE, "conformance quarantine"))
check("EOM (subject with 'quarantine'): Subject changed too",
      mt.eom_check(conn, MT_HDRCHANGE, "Subject", "[conformance] please QuArAnTiNe me"))

err = mt.disconnect(conn)
check("disconnect", err == nil, err)
print("miltertest: " .. failed .. " failed")
io.stdout:flush()
if failed > 0 then
  error("failed checks")
end
