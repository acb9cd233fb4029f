-- common.lua: helpers shared by the xproxy-milter miltertest scripts. Loaded with
-- dofile(dir .. "/common.lua"); every script runs inside pcall so that a Lua error is
-- printed (miltertest itself only exits 1).
function fail(msg)
    error(msg, 0)
end

function check(ok, msg)
    if not ok then fail(msg) end
end

-- Connects to the filter at `sock` and negotiates with libmilter's defaults.
function open(sock)
    local conn = mt.connect(sock, 40, 0.25)
    check(conn ~= nil, "cannot connect to " .. sock)
    check(mt.negotiate(conn, nil, nil, nil) == nil, "negotiate failed")
    return conn
end

function step(conn, what, err)
    check(err == nil, what .. " failed: " .. tostring(err))
    local r = mt.getreply(conn)
    check(r == SMFIR_CONTINUE or r == SMFIR_ACCEPT, what .. ": unexpected reply " .. tostring(r))
end

-- Sends one message: sender, recipient, then the headers (a list of {name, value}).
function send_message(conn, sender, headers)
    step(conn, "mail", mt.mailfrom(conn, sender))
    if not mt.test_option(conn, SMFIP_NORCPT) then
        step(conn, "rcpt", mt.rcptto(conn, "<bob@rcpt.example>"))
    end
    for _, h in ipairs(headers) do
        check(mt.header(conn, h[1], h[2]) == nil, "header " .. h[1])
    end
    if not mt.test_option(conn, SMFIP_NOEOH) then
        check(mt.eoh(conn) == nil, "eoh")
    end
    if not mt.test_option(conn, SMFIP_NOBODY) then
        check(mt.bodystring(conn, "body\r\n") == nil, "body")
    end
    check(mt.eom(conn) == nil, "eom")
end

function reply_name(r)
    if r == SMFIR_CONTINUE then return "continue" end
    if r == SMFIR_ACCEPT then return "accept" end
    if r == SMFIR_REPLYCODE then return "replycode" end
    if r == SMFIR_REJECT then return "reject" end
    if r == SMFIR_TEMPFAIL then return "tempfail" end
    return tostring(r)
end

function run(body)
    local ok, err = pcall(body)
    if not ok then
        mt.echo("FAIL: " .. tostring(err))
        error(err)
    end
    mt.echo("PASS")
end
