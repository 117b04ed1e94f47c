// components/ChatWindow.tsx
import { useChat } from '@/hooks/useChat'
import { useState } from 'react'

export function ChatWindow({ conversationId }: { conversationId: number }) {
  const { messages, isConnected, sendMessage } = useChat(conversationId)
  const [input, setInput] = useState('')

  const handleSend = () => {
    if (input.trim()) {
      sendMessage(input.trim())
      setInput('')
    }
  }

  return (
    <div className="chat-window">
      {/* Connection status */}
      <div className="status">
        {isConnected ? '🟢 Connected' : '🔴 Disconnected'}
      </div>

      {/* Messages list */}
      <div className="messages">
        {messages.map(msg => (
          <div key={msg.id} className="message">
            <strong>{msg.sender_name}:</strong> {msg.message_text}
            <span className="timestamp">{new Date(msg.timestamp).toLocaleTimeString()}</span>
          </div>
        ))}
      </div>

      {/* Input */}
      <div className="input-area">
        <input
          value={input}
          onChange={(e) => setInput(e.target.value)}
          onKeyPress={(e) => e.key === 'Enter' && handleSend()}
          placeholder="Type a message..."
        />
        <button onClick={handleSend}>Send</button>
      </div>
    </div>
  )
}
