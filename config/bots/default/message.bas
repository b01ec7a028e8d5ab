' message.bas runs for each message while no script waits for an answer; the text is in
' `message`. A few words start something; anything else is echoed with the session's count.
command = LCASE(TRIM(message))

IF command = "sign up" OR command = "signup" THEN
  RUN "signup.bas"
ELSE IF command = "rate" THEN
  ' 1 to 5 stars as buttons (a list on WhatsApp, numbered choices by email); the answer is charted.
  ASK RATING
  TALK "Thank you!"
ELSE IF command = "help" THEN
  CLEAR SUGGESTIONS
  ADD SUGGESTION "Sign up" AS "sign up"
  ADD SUGGESTION "Forget me" AS "forget me"
  ADD SUGGESTION "Help" AS "help"
  TALK "I echo what you say. Sign up fills in a short form; forget me drops the name I keep for you."
ELSE IF command = "agent" OR command = "human" THEN
  CALL HandoffToAgent()
ELSE IF command = "forget me" THEN
  user = GET SESSION "user_id"
  IF user <> "" THEN SET USER MEMORY "name", NULL
  SET user_name = NULL
  TALK "Done: I no longer know your name."
ELSE
  SET last_message = message
  count = GET SESSION "session.message_count"
  TALK "You said: " + message + " (message #" + count + " in this session)"
END IF

' The seeds' "Session Handoff": a person is handed to an agent (see README, "Human handoff").
FUNCTION HandoffToAgent()
    agent_id = GET AVAILABLE AGENT
    TRANSFER SESSION agent_id
    TALK "Connecting you to an agent..."
END FUNCTION

ON TRANSFER END
  TALK "You are back with the bot. Say help to see what I can do."
END ON
