-- inject.lua: xproxy-milter in inject mode. Globals (-D): sock, dir, ip (an IPv4 or IPv6
-- address, or "unspec" for a connection without an address = NULL hostaddr), host,
-- client_addr (optional {client_addr} macro, e.g. Sendmail's "IPv6:..."), forged (number
-- of forged X-Original-Source fields the client sends). Checks: every forged field is
-- deleted, exactly one X-Original-Source is inserted, at index 0; prints it as
-- "HEADER: value" for the caller to verify with xproxy-wire.
dofile(dir .. "/common.lua")
run(function()
    local conn = open(sock)
    if client_addr ~= nil and client_addr ~= "" then
        check(mt.macro(conn, SMFIC_CONNECT, "{client_addr}", client_addr, "{client_port}", "2525",
                       "{daemon_addr}", "127.0.0.1", "{daemon_port}", "25") == nil, "macro")
    end
    step(conn, "conninfo", mt.conninfo(conn, host, ip))
    step(conn, "helo", mt.helo(conn, "client.example"))
    check(mt.macro(conn, SMFIC_MAIL, "i", "QID42") == nil, "mail macro")
    local headers = {{"From", "<alice@sender.example>"}}
    for n = 1, tonumber(forged or "0") do
        table.insert(headers, {"X-Original-Source", "v=1; ip=10.9.9." .. n .. "; port=1; t=1; kid=k1; sig=AAAA"})
    end
    table.insert(headers, {"Message-ID", mid})
    table.insert(headers, {"Subject", "test"})
    send_message(conn, sender, headers)
    local r = mt.getreply(conn)
    check(r == SMFIR_CONTINUE or r == SMFIR_ACCEPT, "eom reply " .. reply_name(r))
    if tonumber(forged or "0") > 0 then
        check(mt.eom_check(conn, MT_HDRDELETE, "X-Original-Source"), "forged header not deleted")
    else
        check(not mt.eom_check(conn, MT_HDRDELETE, "X-Original-Source"), "deleted a header that was not there")
    end
    local value = mt.getheader(conn, "X-Original-Source", 0)
    check(value ~= nil, "no X-Original-Source inserted")
    check(mt.getheader(conn, "X-Original-Source", 1) == nil, "more than one X-Original-Source inserted")
    check(mt.eom_check(conn, MT_HDRINSERT, "X-Original-Source", value, 0), "header not inserted at index 0")
    mt.echo("HEADER: " .. value)
    mt.disconnect(conn)
end)
