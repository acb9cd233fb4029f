-- verify.lua: xproxy-milter in verify mode. Globals (-D): sock, dir, hdr (the
-- X-Original-Source value to send; "" for none), mid, sender, want ("pass": the message
-- continues with the header deleted and a pass result recorded; "refused": a reply code
-- is set, nothing is changed; "stripped": the message continues, the header deleted and
-- a fail result recorded). Prints "RESULT: value" of X-Original-Source-Result.
dofile(dir .. "/common.lua")
run(function()
    local conn = open(sock)
    step(conn, "conninfo", mt.conninfo(conn, "gw-a.test", "127.0.0.1"))
    step(conn, "helo", mt.helo(conn, "gw-a.test"))
    local headers = {{"From", "<alice@sender.example>"}}
    if hdr ~= nil and hdr ~= "" then table.insert(headers, {"X-Original-Source", hdr}) end
    table.insert(headers, {"Message-ID", mid})
    send_message(conn, sender, headers)
    local r = mt.getreply(conn)
    if want == "refused" then
        check(r == SMFIR_REPLYCODE or r == SMFIR_REJECT or r == SMFIR_TEMPFAIL, "not refused: " .. reply_name(r))
        check(not mt.eom_check(conn, MT_HDRINSERT), "refused message was changed")
    else
        check(r == SMFIR_CONTINUE or r == SMFIR_ACCEPT, "eom reply " .. reply_name(r))
        if hdr ~= nil and hdr ~= "" then
            check(mt.eom_check(conn, MT_HDRDELETE, "X-Original-Source"), "header not stripped")
        end
        local res = mt.getheader(conn, "X-Original-Source-Result", 0)
        check(res ~= nil, "no result header")
        check(mt.eom_check(conn, MT_HDRINSERT, "X-Original-Source-Result", res, 0), "result not at index 0")
        if want == "pass" then
            check(string.sub(res, 1, 5) == "pass ", "result is not pass: " .. res)
        else
            check(string.sub(res, 1, 5) ~= "pass ", "result is pass: " .. res)
        end
        mt.echo("RESULT: " .. res)
    end
    mt.disconnect(conn)
end)
