' start.bas runs once, when a session starts, on every channel.
' People the channel can recognise again (WhatsApp, Teams, email) are greeted by the name
' they gave in the sign-up form, kept in bot memory under their user id.
user = GET SESSION "user_id"
name = ""
IF user <> "" THEN
  name = GET BOT MEMORY "name_of_" + user
END IF

IF name <> "" THEN
  TALK "Welcome back, " + name + "! Say anything and I'll echo it back."
ELSE
  TALK "Hello! I'm the Switchboard demo bot. Say anything and I'll echo it back."
END IF

ON SESSION END
  LOG SESSION "goodbye", GET SESSION "session.message_count"
END ON
