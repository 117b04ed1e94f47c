// hooks/useChat.ts
import { useEffect, useState, useRef } from "react";

interface Message {
  id: number;
  sender_id: string;
  sender_name: string;
  message_text: string;
  timestamp: string;
  is_read: boolean;
}

export function useChat(conversationId: number) {
  const [messages, setMessages] = useState<Message[]>([]);
  const [isConnected, setIsConnected] = useState(false);
  const ws = useRef<WebSocket | null>(null);

  useEffect(() => {
    // Create WebSocket connection
    const websocket = new WebSocket(
      `ws://localhost:8000/ws/chat/${conversationId}/`
    );

    // Connection opened
    websocket.onopen = () => {
      console.log("WebSocket connected");
      setIsConnected(true);
    };

    // Listen for messages
    websocket.onmessage = (event) => {
      const data = JSON.parse(event.data);

      if (data.type === "message") {
        setMessages((prev) => [...prev, data.message]);

        // Play notification sound
        playNotificationSound();
      }
    };

    // Handle errors
    websocket.onerror = (error) => {
      console.error("WebSocket error:", error);
    };

    // Connection closed
    websocket.onclose = () => {
      console.log("WebSocket disconnected");
      setIsConnected(false);

      // Optional: Auto-reconnect
      setTimeout(() => {
        console.log("Attempting to reconnect...");
        // Recreate connection
      }, 3000);
    };

    ws.current = websocket;

    // Cleanup on unmount
    return () => {
      websocket.close();
    };
  }, [conversationId]);

  // Send message function
  const sendMessage = (text: string) => {
    if (ws.current && ws.current.readyState === WebSocket.OPEN) {
      ws.current.send(
        JSON.stringify({
          message: text,
          type: "TEXT",
        })
      );
    }
  };

  return { messages, isConnected, sendMessage };
}
