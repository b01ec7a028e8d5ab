' start.bas runs once, when a session starts, on every channel.
' People the channel can recognise again (WhatsApp, Teams, email) are greeted by the name
' they gave in the sign-up form, kept in their USER MEMORY: it follows them across sessions and
' linked channels, and goes when they are erased (BOT MEMORY is the bot's, never erased).
user = GET SESSION "user_id"
name = ""
IF user <> "" THEN
  name = GET USER MEMORY "name"
END IF

IF name <> "" THEN
  TALK "Welcome back, " + name + "! Say anything and I'll echo it back."
ELSE
  TALK "Hello! I'm the Switchboard demo bot. Say anything and I'll echo it back."
END IF

ON SESSION END
  LOG SESSION "goodbye", GET SESSION "session.message_count"
END ON
